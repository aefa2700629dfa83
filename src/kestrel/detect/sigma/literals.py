"""Required literals: the strings at least one of which must occur in an event for a rule to
match it. The engine finds them all in one Aho-Corasick pass over the lower-cased ``raw``
records, so a rule is only evaluated on the few events that contain one of its literals.

For a condition tree the requirement is computed bottom-up: a leaf requires the longest plain
run of its value (a regular expression: the runs every match contains, `regex_requirement`);
``or`` requires the union of its branches (or nothing, if one branch requires nothing); ``and``
the most selective of its branches; ``not`` nothing. A rule's prefilter (`clauses`) keeps up to
`MAX_CLAUSES` such requirements of the branches of a top-level ``and``, all of which must hit:
a ``TargetImage`` ending in ``lsass.exe`` is in a third of all process-access events,
``lsass.exe`` *and* one of the ``GrantedAccess`` masks is far rarer. Literals are JSON-escaped
because ``raw`` is JSON text: escaping is per character, so a substring of a value escapes to a
substring of the escaped value.
"""

from __future__ import annotations

import json
import re
import re._constants as sre  # type: ignore[import-not-found]  # (no stub: private, stable)
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaExpansion,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from kestrel.detect.sigma.values import regex_pattern

Requirement = frozenset[str] | None
"""A set of literals one of which must occur, or None: no literal is required."""
Clauses = tuple[frozenset[str], ...] | None
"""Requirements that must all hold (each: one of its literals occurs), or None: none."""
MAX_CLAUSES = 3

# Literals that occur in nearly every Windows event record (field names, the usual folders,
# channel names): a requirement made of these selects almost everything, so prefer another.
_COMMON = (
    '"event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"}'
    ',"system":{"provider":{"#attributes":{"name":"microsoft-windows-sysmon","guid":'
    '"channel":"microsoft-windows-sysmon/operational","computer":"security":'
    '"eventdata":{"rulename":"utctime":"processguid":"processid":"image":"c:\\\\windows\\\\'
    'system32\\\\svchost.exe","c:\\\\windows\\\\syswow64\\\\","c:\\\\program files\\\\'
    '"c:\\\\program files (x86)\\\\","c:\\\\users\\\\public\\\\appdata\\\\local\\\\temp\\\\'
    '"microsoft corporation","microsoft® windows® operating system","nt authority\\\\system"'
    '"user":"commandline":"currentdirectory":"hashes":"md5=sha1=sha256=imphash="'
    '"parentimage":"parentcommandline":"targetobject":"hklm\\\\software\\\\microsoft\\\\'
    'windows\\\\currentversion\\\\"details":"dword (0x00000000)"targetfilename":.exe.dll'
)
MIN_USEFUL = 3  # a literal shorter than this is no filter at all


def requirement(node: object) -> Requirement:
    """The literals ``node`` requires (see the module docstring)."""
    if isinstance(node, ConditionOR):
        return _union([requirement(a) for a in node.args])
    if isinstance(node, ConditionAND):
        return best([r for r in (requirement(a) for a in node.args) if r is not None])
    if isinstance(node, ConditionNOT):
        return None
    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        return value_requirement(node.value)
    return None


def clauses(node: object) -> Clauses:
    """The requirements of ``node``: the best few of a top-level ``and``'s branches, else one."""
    if isinstance(node, ConditionAND):
        found = {c for a in node.args for c in (clauses(a) or ())}
        ranked = sorted(found, key=lambda c: (score(c), sorted(c)), reverse=True)
        return tuple(ranked[:MAX_CLAUSES]) or None
    req = requirement(node)
    return (req,) if req is not None else None


def any_clauses(parts: list[Clauses]) -> Clauses:
    """The requirements of "any of these conditions": one clause, the union of the best
    clause of each (or none, if one condition has none)."""
    if len(parts) == 1:
        return parts[0]
    if not parts or any(p is None for p in parts):
        return None
    return (frozenset().union(*[max(p, key=score) for p in parts if p is not None]),)


def value_requirement(value: SigmaType) -> Requirement:
    """The literals a single value requires."""
    if isinstance(value, SigmaExpansion):
        return _union([value_requirement(v) for v in value.values])
    if isinstance(value, SigmaString):
        run = _longest_run(value)
        return frozenset(_variants(run, isinstance(value, SigmaCasedString))) if run else None
    if isinstance(value, SigmaRegularExpression):
        return regex_requirement(regex_pattern(value))
    if isinstance(value, SigmaCIDRExpression):
        # the run before the first wildcard (IPv6 ranges expand to ``fe8?:*``: ``fe8``)
        prefixes = [re.split(r"[*?]", p, maxsplit=1)[0].lower() for p in value.expand("*")]
        return frozenset(prefixes) if all(len(p) >= MIN_USEFUL for p in prefixes) else None
    return None


def regex_requirement(pattern: str) -> Requirement:
    """The literals a regular expression requires: runs of plain characters that every match
    contains, from Python's own parse of the pattern (``re._parser``), or None.

    Only what is provably in every match counts: a run of literal characters in sequence; a
    group or a repetition of at least one is required as a whole; an alternation requires
    one of its branches' requirements (the union; nothing if one branch requires nothing);
    classes, ``.``, anchors, look-arounds and optional parts break a run and require nothing.
    A pattern Python cannot parse, or any case-insensitive part (``(?i)``: Unicode case
    folding matches the long s, U+017F, for ``s``, which lower-casing does not give),
    requires nothing. The match is against the field's own value, which stands JSON-escaped
    in ``raw``: runs are escaped and lower-cased as the other literals are (`_variants`).
    Where Rust's regex rejects a pattern, Polars runs Python's ``re`` (`values.regex_match`),
    whose parse this is."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if parsed.state.flags & sre.SRE_FLAG_IGNORECASE:
        return None
    try:
        found = _sequence(list(parsed))
    except _CaseFoldedError:
        return None
    return frozenset(v for run in found for v in _variants(run, False)) if found else None


class _CaseFoldedError(Exception):
    """A part of the pattern matches case-insensitively: no literal is required."""


def _sequence(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """The best requirement of a sequence of parsed items (each of which must match)."""
    options: list[frozenset[str]] = []
    run: list[str] = []

    def close() -> None:
        if len(run) >= MIN_USEFUL:
            options.append(frozenset(["".join(run)]))
        run.clear()

    for op, av in items:
        if op is sre.LITERAL:
            run.append(chr(av))
            continue
        close()
        inner: frozenset[str] | None = None
        if op is sre.SUBPATTERN:
            _, add, remove, sub = av
            if (add | remove) & sre.SRE_FLAG_IGNORECASE:
                raise _CaseFoldedError
            inner = _sequence(list(sub))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, _, sub = av
            inner = _sequence(list(sub)) if low >= 1 else None
        elif op is sre.BRANCH:
            _, branches = av
            inner = _union([_sequence(list(b)) for b in branches])
        elif op is sre.ATOMIC_GROUP:
            inner = _sequence(list(av))
        if inner:
            options.append(inner)
    close()
    return best(options)


def _union(parts: list[Requirement]) -> Requirement:
    if not parts or any(p is None for p in parts):
        return None
    return frozenset().union(*[p for p in parts if p is not None])


def best(options: list[frozenset[str]]) -> Requirement:
    """The most selective requirement: longest shortest literal, uncommon first."""
    if not options:
        return None
    return max(options, key=score)


def score(option: frozenset[str]) -> tuple[int, int, int]:
    """Higher is more selective: no common literal, then shortest literal length, fewer."""
    shortest = min((len(s) for s in option), default=0)
    common = any(s in _COMMON for s in option)
    return (0 if common else 1, min(shortest, 12), -len(option))


def _longest_run(value: SigmaString) -> str:
    """The longest stretch of plain characters between wildcards, escaped as JSON, lower."""
    runs: list[str] = [""]
    for part in value.s:
        if isinstance(part, str):
            runs[-1] += part
        elif part in (SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE):
            runs.append("")
        else:  # a placeholder: nothing known about it
            runs.append("")
    run = max(runs, key=len)
    return run if len(run) >= MIN_USEFUL else ""


def _variants(run: str, cased: bool) -> list[str]:
    """The run as it appears in lower-cased JSON text (non-ASCII also \\u-escaped)."""
    text = run.lower()
    out = {json.dumps(text, ensure_ascii=False)[1:-1]}
    if not text.isascii():
        out.add(json.dumps(text, ensure_ascii=True)[1:-1].lower())
        out.add(json.dumps(run, ensure_ascii=False)[1:-1])  # Unicode case folding may differ
    del cased  # the prefilter is case-insensitive either way: a superset is enough
    return sorted(out)
