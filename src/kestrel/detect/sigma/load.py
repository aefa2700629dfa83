"""Loading Sigma rules from folders, files and zip archives with pySigma.

pySigma parses and validates each rule; a rule that does not parse is kept aside as a
`RuleIssue` (its location and the reason) and never stops the others, like pySigma's own
``collect_errors``. With ``on_error="raise"`` (tests) the first problem raises `RuleError`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from kestrel.errors import KestrelError

OnError = Literal["raise", "collect"]
RULE_SUFFIXES = (".yml", ".yaml")


class RuleError(KestrelError):
    """A Sigma rule that cannot be loaded or compiled; ``source`` says where it is."""

    def __init__(self, message: str, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """A rule (or file) set aside, with where it is and why."""

    source: str
    reason: str
    rule_id: str = ""
    title: str = ""


@dataclass(slots=True)
class RuleSet:
    """What loading produced: detection rules, correlation rules and the issues."""

    rules: list[SigmaRule] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    issues: list[RuleIssue] = field(default_factory=list)


def load_rules(paths: Iterable[str | Path], on_error: OnError = "collect") -> RuleSet:
    """Load every ``*.yml`` / ``*.yaml`` under ``paths`` (files, folders, ``.zip`` archives).

    Raises:
        RuleError: with ``on_error="raise"``, on the first rule that does not parse; and always
            for a path that does not exist.
    """
    collections: list[SigmaCollection] = []
    issues: list[RuleIssue] = []
    for source, text in _documents(paths):
        collections.append(_parse(source, text, issues))
    merged = SigmaCollection.merge(collections, resolve_references=False)
    try:
        merged.resolve_rule_references()
    except SigmaError as exc:
        issues.append(RuleIssue("correlations", f"unresolved rule reference: {exc}"))
    out = _split(merged, issues)
    if on_error == "raise" and out.issues:
        first = out.issues[0]
        raise RuleError(first.reason, first.source)
    return out


def load_text(text: str, name: str = "<text>", on_error: OnError = "raise") -> RuleSet:
    """Load rules from YAML text (one or several documents); for tests and `rules test`."""
    issues: list[RuleIssue] = []
    collection = _parse(name, text, issues)
    collection.resolve_rule_references()
    out = _split(collection, issues)
    if on_error == "raise" and out.issues:
        raise RuleError(out.issues[0].reason, out.issues[0].source)
    return out


def _parse(source: str, text: str, issues: list[RuleIssue]) -> SigmaCollection:
    try:
        return SigmaCollection.from_yaml(
            text,
            collect_errors=True,
            source=SigmaRuleLocation(Path(source)),
            resolve_references=False,
        )
    except Exception as exc:  # YAML errors and anything pySigma lets escape
        issues.append(RuleIssue(source, f"unreadable rule file: {exc}"))
        return SigmaCollection([])


def _split(collection: SigmaCollection, issues: list[RuleIssue]) -> RuleSet:
    out = RuleSet(issues=list(issues))
    out.issues.extend(_collection_issues(collection))
    for rule in collection.rules:
        if rule.errors:
            out.issues.append(_rule_issue(rule, "; ".join(str(e) for e in rule.errors)))
        elif isinstance(rule, SigmaCorrelationRule):
            out.correlations.append(rule)
        elif isinstance(rule, SigmaRule):
            out.rules.append(rule)
    return out


def _collection_issues(collection: SigmaCollection) -> Iterator[RuleIssue]:
    for err in collection.errors:
        source = getattr(err, "source", None)
        where = str(source.path) if source is not None else "<unknown>"
        yield RuleIssue(where, str(err))


def _rule_issue(rule: SigmaRule | SigmaCorrelationRule | object, reason: str) -> RuleIssue:
    source = getattr(rule, "source", None)
    where = str(source.path) if source is not None else "<unknown>"
    rid = str(getattr(rule, "id", "") or "")
    return RuleIssue(where, reason, rid, str(getattr(rule, "title", "") or ""))


def rule_source(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """The file a rule came from (``archive.zip!member`` inside archives)."""
    return str(rule.source.path) if rule.source is not None else "<text>"


def _documents(paths: Iterable[str | Path]) -> Iterator[tuple[str, str]]:
    """(location, YAML text) for every rule file under the paths, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise RuleError("no such file or folder", str(path))
        if path.is_dir():
            yield from _folder(path)
        elif zipfile.is_zipfile(path):
            yield from _zip(path)
        else:
            yield str(path), path.read_text(encoding="utf-8")


def _folder(path: Path) -> Iterator[tuple[str, str]]:
    for child in sorted(path.rglob("*")):
        if child.suffix in RULE_SUFFIXES and child.is_file():
            yield str(child), child.read_text(encoding="utf-8")
        elif child.suffix == ".zip" and child.is_file():
            yield from _zip(child)


def _zip(path: Path) -> Iterator[tuple[str, str]]:
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(RULE_SUFFIXES) and not name.endswith("/"):
                yield f"{path}!{name}", archive.read(name).decode("utf-8", errors="replace")
