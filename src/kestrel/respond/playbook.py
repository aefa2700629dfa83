"""Playbooks: the YAML model, its loader, and how a finding is matched and templated.

A playbook says *when* (``trigger`` on the finding's detector, rule id, severity,
technique, entity type, then ``conditions`` on any finding field), *what* (``steps``:
an action and its parameters, templated from the finding as ``{{ finding.entity.id }}``
or from its first evidence event as ``{{ event.process_pid }}``), and *how carefully*
(``on_error``, ``rollback``, ``cooldown``, ``requires_approval``).

Why pydantic with ``extra="forbid"`` here and nowhere inside: a misspelt key in a
response playbook (``requires_aproval``) must be an error naming the field, never a
silently ignored safety switch. Inside the engine the validated models are plain values.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kestrel.errors import PlaybookError
from kestrel.findings import Finding, Severity
from kestrel.respond.actions import ACTIONS
from kestrel.respond.actions.base import describe

OnError = Literal["stop", "continue", "rollback"]
Operator = Literal["eq", "ne", "in", "not_in", "contains", "startswith", "endswith", "matches",
                   "gt", "ge", "lt", "le", "exists"]  # fmt: skip
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class ExactModel(BaseModel):
    """Unknown keys are errors; values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(ExactModel):
    """Which findings start the playbook: every given field must hold (globs allowed)."""

    detector: str | None = None
    rule_id: str | None = None  # matched against signal names and tags (``sigma:<id>``)
    severity: Annotated[str, Field(pattern=r"(?i)^(info|low|medium|high|critical)$")] | None = (
        None  # the minimum
    )
    technique: str | None = None  # an ATT&CK / ATLAS id; T1059 also matches T1059.001
    entity_type: str | None = None


class Condition(ExactModel):
    """One test on a field of the templating context (``finding.title``, ``event.host``)."""

    field: str = Field(pattern=r"^(finding|event)(\.[A-Za-z0-9_]+)+$")
    op: Operator = "eq"
    value: Any = None


class Step(ExactModel):
    """One action with its (templated) parameters."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    on_error: OnError | None = None  # overrides the playbook's

    @field_validator("action")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ACTIONS:
            raise ValueError(f"unknown action {value!r} (known: {', '.join(sorted(ACTIONS))})")
        return value


class Playbook(ExactModel):
    """A validated playbook."""

    name: Annotated[str, Field(pattern=_NAME)]
    description: str = ""
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list)
    steps: Annotated[list[Step], Field(min_length=1)]
    on_error: OnError = "stop"
    rollback: list[Step] = Field(default_factory=list)
    cooldown: Annotated[int, Field(ge=0)] = 0  # seconds between runs per entity; "10m" too
    requires_approval: bool = False

    @field_validator("cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


def parse_duration(text: str) -> int:
    """Seconds from ``"90"``, ``"30s"``, ``"10m"``, ``"2h"`` or ``"1d"``.

    >>> parse_duration("10m")
    600
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 2h)")
    return int(match.group(1)) * _UNITS[match.group(2)]


# -- loading --------------------------------------------------------------------------------


def parse_playbook(text: str, origin: str = "<playbook>") -> Playbook:
    """A playbook from YAML text; `PlaybookError` names ``origin`` and every bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{origin}: not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{origin}: a playbook is a mapping, got {type(data).__name__}")
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError(f"{origin}: {describe(exc)}") from exc
    problems = step_param_problems(playbook)
    if problems:
        raise PlaybookError(f"{origin}: {'; '.join(problems)}")
    return playbook


def step_param_problems(playbook: Playbook) -> list[str]:
    """Unknown and missing parameters of every step, checked by name before templating
    (types are checked after templating, when the values are known)."""
    problems = []
    for where, steps in (("steps", playbook.steps), ("rollback", playbook.rollback)):
        for i, step in enumerate(steps):
            known, required = ACTIONS[step.action].field_names()
            problems += [f"{where}.{i}.params.{k}: unknown parameter of {step.action} "
                         f"(known: {', '.join(sorted(known))})"
                         for k in sorted(set(step.params) - known)]  # fmt: skip
            problems += [f"{where}.{i}.params.{k}: required by {step.action}"
                         for k in sorted(required - set(step.params))]  # fmt: skip
    return problems


def load_playbook(path: Path) -> Playbook:
    """One playbook file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read: {exc}") from exc
    return parse_playbook(text, str(path))


def load_playbooks(paths: Sequence[Path]) -> list[Playbook]:
    """Playbooks from files and folders (``*.yml`` / ``*.yaml``), by name; two with one
    name is an error (a run id names its playbook)."""
    files = [f for p in paths for f in (_yaml_files(p) if p.is_dir() else [p])]
    found: dict[str, Playbook] = {}
    for f in files:
        pb = load_playbook(f)
        if pb.name in found:
            raise PlaybookError(f"{f}: name: playbook {pb.name!r} is defined twice")
        found[pb.name] = pb
    return list(found.values())


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())


# -- matching and templating ------------------------------------------------------------------


def finding_context(finding: Finding, events: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What conditions and templates see: ``finding`` (its fields, plus ``id``) and
    ``event`` (the first evidence event's columns, empty when none was looked up)."""
    f = {
        "id": finding.finding_id, "detector": finding.detector, "title": finding.title,
        "entity": {"type": finding.entity.type, "id": finding.entity.id},
        "severity": str(finding.severity), "techniques": list(finding.techniques),
        "tags": list(finding.tags), "evidence": list(finding.evidence),
        "first_seen": finding.first_seen.isoformat(), "last_seen": finding.last_seen.isoformat(),
        "signals": [{"name": s.name, "value": s.value, "threshold": s.threshold,
                     "detail": s.detail} for s in finding.signals],
    }  # fmt: skip
    return {"finding": f, "event": dict(events[0]) if events else {}}


def triggered(playbook: Playbook, finding: Finding, context: Mapping[str, Any]) -> bool:
    """Whether the trigger and every condition hold for this finding."""
    t = playbook.trigger
    names = [s.name for s in finding.signals] + list(finding.tags)
    checks = (
        t.detector is None or fnmatch.fnmatchcase(finding.detector, t.detector),
        t.rule_id is None or any(fnmatch.fnmatchcase(n, f"*{t.rule_id}") for n in names),
        t.severity is None or finding.severity >= Severity.parse(t.severity),
        t.technique is None or any(_technique(x, t.technique) for x in finding.techniques),
        t.entity_type is None or finding.entity.type == t.entity_type,
    )
    return all(checks) and all(holds(c, context) for c in playbook.conditions)


def _technique(have: str, want: str) -> bool:
    return have == want or have.startswith(want + ".")


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (list items by index); `KeyError` naming the path."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def holds(cond: Condition, context: Mapping[str, Any]) -> bool:
    """Whether one condition holds; a missing field only satisfies ``ne`` and ``not_in``."""
    try:
        have = lookup(context, cond.field)
    except KeyError:
        return cond.op in ("ne", "not_in")
    return bool(_OPS[cond.op](have, cond.value))


def _num(a: Any, b: Any, op: str) -> bool:
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return {"gt": x > y, "ge": x >= y, "lt": x < y, "le": x <= y}[op]


_OPS: dict[str, Any] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "in": lambda a, b: a in (b or ()),
    "not_in": lambda a, b: a not in (b or ()),
    "contains": lambda a, b: b in a if isinstance(a, str | list) else False,
    "startswith": lambda a, b: isinstance(a, str) and a.startswith(str(b)),
    "endswith": lambda a, b: isinstance(a, str) and a.endswith(str(b)),
    "matches": lambda a, b: isinstance(a, str) and re.search(str(b), a) is not None,
    "exists": lambda a, b: a is not None,
    **{op: (lambda o: lambda a, b: _num(a, b, o))(op) for op in ("gt", "ge", "lt", "le")},
}

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Fill ``{{ path }}`` templates. A string that is exactly one template keeps the value's
    type (a pid stays an int); embedded ones are formatted as text. `KeyError` names an
    unknown path, so a step never runs with a blank where a target should be."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return _required(context, whole.group(1))
    return _TEMPLATE.sub(lambda m: str(_required(context, m.group(1))), value)


def _required(context: Mapping[str, Any], path: str) -> Any:
    found = lookup(context, path)
    if found is None:
        raise KeyError(path)
    return found
