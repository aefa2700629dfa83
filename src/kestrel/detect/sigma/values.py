"""One Sigma value against one field, as a Polars expression with Sigma's semantics.

* Matching is case-insensitive: the engine hands every field in lower case as well
  (``lc:<name>``), literals are lower-cased here; ``|cased`` and ``|re`` use the original.
* NULL-safe: a missing field makes a leaf null, and ``and`` / ``or`` (Kleene logic) then
  give exactly what they would with the leaf *false*; the compiler turns null into false
  right under every ``not`` and at the top, so ``not selection`` is true for an event that
  lacks the field (SQL's three-valued ``NOT`` gets this wrong). Filling at every leaf
  instead would double the number of operations Polars runs per rule.
* Wildcards: ``*x*`` / ``x*`` / ``*x`` become contains / starts_with / ends_with, anything
  else an anchored regex over the lower-cased field.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from functools import lru_cache

import polars as pl
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from kestrel.detect.sigma.load import RuleError

Resolve = Callable[[str, bool], pl.Expr]
"""(field name, lower-cased?) → the column holding it in the evaluation frame."""

_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_OPS: dict[CompareOperators, Callable[[pl.Expr, float], pl.Expr]] = {
    CompareOperators.LT: lambda c, n: c < n,
    CompareOperators.LTE: lambda c, n: c <= n,
    CompareOperators.GT: lambda c, n: c > n,
    CompareOperators.GTE: lambda c, n: c >= n,
    CompareOperators.NEQ: lambda c, n: c != n,
}


def match_value(field: str, value: SigmaType, resolve: Resolve, numeric: bool) -> pl.Expr:
    """The expression for ``field`` matching ``value``; null (for false) where it is missing.

    ``numeric`` says the field is an integer column (``event_code``), compared as a number.
    """
    return _match(field, value, resolve, numeric)


def _match(field: str, value: SigmaType, resolve: Resolve, numeric: bool) -> pl.Expr:
    if isinstance(value, SigmaExpansion):
        return any_([match_value(field, v, resolve, numeric) for v in value.values])
    if isinstance(value, SigmaCasedString):
        return string_match(resolve(field, False), value, lower=False)
    if isinstance(value, SigmaString):
        return string_match(resolve(field, True), value, lower=True)
    if isinstance(value, SigmaNumber | SigmaBool):
        return _scalar(field, value, resolve, numeric)
    if isinstance(value, SigmaNull):
        col = resolve(field, False)
        return col.is_null() | (col.cast(pl.String) == "")
    if isinstance(value, SigmaExists):
        col = resolve(field, False)
        return col.is_not_null() if bool(value) else col.is_null()
    return _special(field, value, resolve)


def _special(field: str, value: SigmaType, resolve: Resolve) -> pl.Expr:
    if isinstance(value, SigmaRegularExpression):
        return regex_match(resolve(field, False), value)
    if isinstance(value, SigmaCIDRExpression):
        return cidr_match(resolve(field, True), value)
    if isinstance(value, SigmaCompareExpression):
        number = resolve(field, False).cast(pl.String).cast(pl.Float64, strict=False)
        return _OPS[value.op](number, float(value.number.number))
    if isinstance(value, SigmaFieldReference):
        return fieldref_match(resolve(field, True), resolve(value.field, True), value)
    raise RuleError(f"value type {type(value).__name__} is not supported")


def _scalar(field: str, value: SigmaNumber | SigmaBool, resolve: Resolve, numeric: bool) -> pl.Expr:
    if isinstance(value, SigmaBool):
        return resolve(field, True) == str(bool(value.boolean)).lower()
    if numeric:
        return resolve(field, False) == value.number
    return resolve(field, True) == str(value.number).lower()


def string_match(col: pl.Expr, value: SigmaString, lower: bool) -> pl.Expr:
    """A Sigma string with its wildcards against ``col`` (already lower-cased when ``lower``)."""
    return parts_match(col, [_fold(p, lower) for p in value.s])


def parts_match(col: pl.Expr, parts: list[str | SpecialChars]) -> pl.Expr:
    """Plain runs and wildcards against ``col``, with the cheapest string operation."""
    multi = SpecialChars.WILDCARD_MULTI
    inner = parts[1:-1] if len(parts) >= 2 else []
    if all(isinstance(p, str) for p in parts):
        return col == "".join(p for p in parts if isinstance(p, str))
    if len(parts) == 3 and parts[0] is multi and parts[2] is multi and isinstance(parts[1], str):
        return col.str.contains(parts[1], literal=True)
    if len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
        return col.str.starts_with(parts[0])
    if len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
        return col.str.ends_with(parts[1])
    if parts == [multi] or (inner == [] and all(p is multi for p in parts)):
        return col.is_not_null()
    return col.str.contains(wildcard_regex(parts))


def _fold(part: str | SpecialChars | Placeholder, lower: bool) -> str | SpecialChars:
    if isinstance(part, Placeholder):
        raise RuleError(f"unresolved placeholder %{part.name}%")
    if isinstance(part, str):
        return part.lower() if lower else part
    return part


def wildcard_regex(parts: list[str | SpecialChars]) -> str:
    """An anchored regex for a wildcard string: ``*`` → ``.*``, ``?`` → ``.``."""
    out = []
    for p in parts:
        if p is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(str(p)))
    return "(?s)^" + "".join(out) + "$"


def regex_pattern(value: SigmaRegularExpression) -> str:
    """The pattern of ``|re`` with its flags (``|i`` / ``|m`` / ``|s``) inline."""
    flags = "".join(sorted(_FLAGS[f] for f in value.flags))
    return (f"(?{flags})" if flags else "") + str(value.regexp.to_plain())


def regex_match(col: pl.Expr, value: SigmaRegularExpression) -> pl.Expr:
    """``|re`` (with ``|i`` / ``|m`` / ``|s``); Python's ``re`` for what Rust's regex lacks."""
    pattern = regex_pattern(value)
    if rust_regex_ok(pattern):
        return col.str.contains(pattern)
    compiled = re.compile(pattern)  # look-around, back-references: candidates only, rare
    return col.map_batches(
        lambda s: pl.Series([v is not None and compiled.search(v) is not None for v in s]),
        return_dtype=pl.Boolean,
    )


@lru_cache(maxsize=4096)
def rust_regex_ok(pattern: str) -> bool:
    """Whether Polars' (Rust) regex engine accepts the pattern."""
    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.ComputeError:
        return False
    return True


def keyword_parts(value: SigmaType) -> list[str | SpecialChars]:
    """A value without a field, as wildcard parts over the lower-cased ``raw`` record: the
    value's characters JSON-escaped the way they appear there, ``*`` on both sides."""
    if isinstance(value, SigmaNumber):
        value = SigmaString(str(value.number))
    if not isinstance(value, SigmaString):
        raise RuleError(f"keyword of type {type(value).__name__} is not supported")
    multi = SpecialChars.WILDCARD_MULTI
    parts: list[str | SpecialChars] = [multi]
    for p in value.s:
        if isinstance(p, str):
            parts.append(json.dumps(p.lower(), ensure_ascii=False)[1:-1])
        elif isinstance(p, SpecialChars):
            parts.append(p)
    parts.append(multi)
    return _squash(parts)


def _squash(parts: list[str | SpecialChars]) -> list[str | SpecialChars]:
    """Adjacent ``*`` collapse to one, so ``*abc*`` stays a plain contains."""
    out: list[str | SpecialChars] = []
    for p in parts:
        if not (out and p is SpecialChars.WILDCARD_MULTI and out[-1] is p):
            out.append(p)
    return out


def cidr_match(col: pl.Expr, value: SigmaCIDRExpression) -> pl.Expr:
    """A CIDR range as the address patterns pySigma expands it to (``10.*``; for IPv6 also
    ``?``, one hex digit: ``fe80::/10`` is ``fe8?:*`` ... ``feb?:*``)."""
    return any_([parts_match(col, p) for p in cidr_parts(value)])


def cidr_parts(value: SigmaCIDRExpression) -> list[list[str | SpecialChars]]:
    """Each pattern of the range as wildcard parts, lower-cased (``*`` any run, ``?`` one)."""
    out = []
    for pattern in value.expand("*"):
        parts: list[str | SpecialChars] = []
        for run in re.split(r"([*?])", pattern.lower()):
            if run == "*":
                parts.append(SpecialChars.WILDCARD_MULTI)
            elif run == "?":
                parts.append(SpecialChars.WILDCARD_SINGLE)
            elif run:
                parts.append(run)
        out.append(parts)
    return out


def fieldref_match(col: pl.Expr, other: pl.Expr, value: SigmaFieldReference) -> pl.Expr:
    """``|fieldref``: the field equals (starts / ends with) another field of the same event."""
    if value.starts_with and value.ends_with:
        return col.str.contains(other, literal=True)
    if value.starts_with:
        return col.str.starts_with(other)
    if value.ends_with:
        return col.str.ends_with(other)
    return col == other


# -- many values of one field at once ------------------------------------------------------

Kind = str  # "eq" | "contains" | "startswith" | "endswith"


def plain_kind(value: SigmaType) -> tuple[Kind, str] | None:
    """(kind, lower-cased literal) for a case-insensitive string that is one plain run with at
    most a leading and / or trailing ``*``; None for anything else (regex, ``?``, cased ...)."""
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        return None
    parts = list(value.s)
    multi = SpecialChars.WILDCARD_MULTI
    head, tail = bool(parts) and parts[0] is multi, len(parts) > 1 and parts[-1] is multi
    inner = parts[int(head) : len(parts) - int(tail)]
    if len(inner) != 1 or not isinstance(inner[0], str):
        return None
    kinds = {(False, False): "eq", (True, True): "contains", (False, True): "startswith"}
    return kinds.get((head, tail), "endswith"), inner[0].lower()


def any_of(col: pl.Expr, kind: Kind, literals: list[str]) -> pl.Expr:
    """``col`` (lower-cased) equal to / containing / starting / ending with any literal, as
    one operation: ``is_in``, one Aho-Corasick pass, or one anchored alternation.

    Contains-any is Aho-Corasick (``contains_any``), not a regex alternation: Polars keeps only
    a few compiled regexes per thread, so with thousands of rules every regex is compiled again
    on every batch, and building the automaton costs about half as much as compiling the
    alternation (what a 10,000-event micro-batch mostly pays for)."""
    if len(literals) == 1:
        one = {"eq": col.__eq__, "contains": lambda s: col.str.contains(s, literal=True),
               "startswith": col.str.starts_with, "endswith": col.str.ends_with}  # fmt: skip
        return one[kind](literals[0])
    if kind == "eq":
        return col.is_in(literals)
    if kind == "contains" and all(literals):
        return col.str.contains_any(literals)
    alternation = "(?:" + "|".join(re.escape(s) for s in literals) + ")"
    anchored = {"startswith": "^" + alternation, "endswith": alternation + "$"}
    return col.str.contains("(?s)" + anchored.get(kind, alternation))


def any_(exprs: list[pl.Expr]) -> pl.Expr:
    """``a | b | ...`` as a balanced tree (Polars runs ``|`` at half the cost of
    ``any_horizontal``, whose inputs it materializes first)."""
    return _balanced(exprs, operator.or_)


def all_(exprs: list[pl.Expr]) -> pl.Expr:
    """``a & b & ...`` as a balanced tree."""
    return _balanced(exprs, operator.and_)


def _balanced(exprs: list[pl.Expr], op: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> pl.Expr:
    if len(exprs) == 1:
        return exprs[0]
    mid = len(exprs) // 2
    return op(_balanced(exprs[:mid], op), _balanced(exprs[mid:], op))
