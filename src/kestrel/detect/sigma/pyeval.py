"""Rules as Python predicates, for rules with only a few candidate events.

A rule evaluated by Polars costs a fixed ~10-50 us per expression node and batch, whatever the
number of rows (plan building, regex compiling, Aho-Corasick building for ``contains_any``):
in a 10,000-event micro-batch, process creation alone has ~200 candidate rules over ~100
events, ~100 ms of plan and almost no rows. The same rule as a Python predicate costs a few
microseconds per (rule, event) pair and nothing per batch, so a rule with few candidates is
cheaper that way; `evaluate.py` picks per rule.

The predicate is built from the same pySigma condition tree as the Polars expression
(`compile.py`) and reads the same evaluation-frame columns (lower-cased copies, source fields),
so it sees exactly the values the expression sees. Semantics are those of `values.py`: a
missing field makes a leaf false (two-valued logic with a missing leaf false is what Kleene
logic with null filled to false under every ``not`` and at the top gives, since ``and`` /
``or`` are monotone). What Polars would reject or treat by type (a string operation on a
number column) raises `FallbackError` at evaluation, and that rule goes to Polars; what has no exact
Python twin (Rust regular expressions, ``lt`` / ``gt`` number parsing) raises `UnsupportedError`
when compiling, and the rule always goes to Polars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import re2
from ahocorasick_rs import AhoCorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from kestrel.detect.sigma.load import RuleError
from kestrel.detect.sigma.values import (
    cidr_parts,
    keyword_parts,
    plain_kind,
    regex_pattern,
    rust_regex_ok,
)

Columns = dict[str, list[Any]]
"""Evaluation-frame column name → its values, for the rows being checked."""
Pred = Callable[[Columns, int], bool]
"""(columns, position) → whether the rule matches the event at that position."""
Name = Callable[[str, bool], str]
"""(Sigma field, lower-cased?) → the frame column holding it (`compile._Refs.name`)."""
_MULTI = SpecialChars.WILDCARD_MULTI
_FEW = 8  # more literals than this: an Aho-Corasick automaton instead of a loop
_RE2 = re2.Options()
_RE2.log_errors = False  # a rejected pattern is reported by the exception, not on stderr


class UnsupportedError(Exception):
    """The rule has no exact Python twin: it is always evaluated by Polars."""


class FallbackError(Exception):
    """A value of a type the string operation does not take (Polars would raise or compare
    by type): the rule is evaluated by Polars for this batch."""


@dataclass(frozen=True, slots=True)
class Names:
    """How `compile.py` names things: a field's frame column, whether it is a number column,
    and the lower-cased record that keywords search."""

    column: Name
    numeric: Callable[[str], bool]
    keywords: str


def predicate(trees: Sequence[object], names: Names) -> Pred | None:
    """The rule's predicate (any of its conditions), or None if it has no exact Python twin."""
    try:
        return _any([_node(t, names) for t in trees if t is not None])
    except UnsupportedError:
        return None


def _node(node: object, names: Names) -> Pred:
    if isinstance(node, ConditionAND):
        return _all([_node(a, names) for a in node.args])
    if isinstance(node, ConditionOR):
        return _any(_or_args(node.args, names))
    if isinstance(node, ConditionNOT):
        inner = _node(node.args[0], names)
        return lambda c, i: not inner(c, i)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value(node.field, node.value, names.column, names.numeric(node.field))
    if isinstance(node, ConditionValueExpression):
        try:
            parts = keyword_parts(node.value)
        except RuleError as exc:
            raise UnsupportedError(str(exc)) from exc
        return _parts(names.keywords, parts)
    raise UnsupportedError(type(node).__name__)


def _or_args(args: Sequence[object], names: Names) -> list[Pred]:
    """The branches of an ``or``, plain values of one field and kind as one test (as
    `compile._or_args` does: a list of hundreds of values is one automaton, not hundreds)."""
    groups: dict[tuple[str, str], list[str]] = {}
    out: list[Pred] = []
    for arg in args:
        plain = None
        if isinstance(arg, ConditionFieldEqualsValueExpression) and not names.numeric(arg.field):
            plain = plain_kind(arg.value)
        if plain is None:
            out.append(_node(arg, names))
        else:
            assert isinstance(arg, ConditionFieldEqualsValueExpression)
            groups.setdefault((arg.field, plain[0]), []).append(plain[1])
    for (field, kind), literals in groups.items():
        out.append(_any_of(names.column(field, True), kind, literals))
    return out


def _value(field: str, value: SigmaType, name: Name, numeric: bool) -> Pred:
    if isinstance(value, SigmaExpansion):
        return _any([_value(field, v, name, numeric) for v in value.values])
    if isinstance(value, SigmaCasedString):
        return _parts(name(field, False), _folded(value, lower=False))
    if isinstance(value, SigmaString):
        kind = plain_kind(value)
        if kind is not None:
            return _any_of(name(field, True), kind[0], [kind[1]])
        return _parts(name(field, True), _folded(value, lower=True))
    if isinstance(value, SigmaBool):
        return _eq(name(field, True), str(bool(value.boolean)).lower())
    if isinstance(value, SigmaNumber):
        if numeric:
            return _number(name(field, False), value.number)
        return _eq(name(field, True), str(value.number).lower())
    if isinstance(value, SigmaNull):
        col = name(field, False)
        return lambda c, i: c[col][i] is None or c[col][i] == ""
    if isinstance(value, SigmaExists):
        col, want = name(field, False), bool(value)
        return lambda c, i: (c[col][i] is not None) is want
    if isinstance(value, SigmaRegularExpression):
        return _regex(name(field, False), regex_pattern(value))
    if isinstance(value, SigmaCIDRExpression):
        return _cidr(name(field, True), value)
    if isinstance(value, SigmaFieldReference):
        return _fieldref(name(field, True), name(value.field, True), value)
    raise UnsupportedError(type(value).__name__)


def _folded(value: SigmaString, lower: bool) -> list[str | SpecialChars]:
    out: list[str | SpecialChars] = []
    for p in value.s:
        if isinstance(p, str):
            out.append(p.lower() if lower else p)
        elif isinstance(p, SpecialChars):
            out.append(p)
        else:  # a placeholder: compile.py refuses the rule before this
            raise UnsupportedError("placeholder")
    return out


def _text(value: Any) -> str | None:
    """The value for a string operation: text, None (missing), or `FallbackError`. The hot
    predicates test ``type(v) is str`` first and call this only for the other values: a call
    per leaf and pair is a good part of a micro-batch's predicate time."""
    if value is None or isinstance(value, str):
        return value
    raise FallbackError(type(value).__name__)


def _parts(col: str, parts: list[str | SpecialChars]) -> Pred:
    """`values.parts_match`, in Python."""
    inner = parts[1:-1] if len(parts) >= 2 else []
    if all(isinstance(p, str) for p in parts):
        return _eq(col, "".join(p for p in parts if isinstance(p, str)))
    first, last = parts[0], parts[-1]
    if len(parts) == 3 and first is _MULTI and last is _MULTI and isinstance(parts[1], str):
        return _any_of(col, "contains", [parts[1]])
    if len(parts) == 2 and last is _MULTI and isinstance(first, str):
        return _any_of(col, "startswith", [first])
    if len(parts) == 2 and first is _MULTI and isinstance(last, str):
        return _any_of(col, "endswith", [last])
    if parts == [_MULTI] or (inner == [] and all(p is _MULTI for p in parts)):
        return lambda c, i: c[col][i] is not None
    body = "".join(
        ".*" if p is _MULTI else "." if p is SpecialChars.WILDCARD_SINGLE else re.escape(str(p))
        for p in parts
    )
    full = re.compile("(?s)" + body).fullmatch  # = the anchored ``^...$`` of `wildcard_regex`

    def wildcard(c: Columns, i: int) -> bool:
        v = _text(c[col][i])
        return v is not None and full(v) is not None

    return wildcard


def _eq(col: str, literal: str) -> Pred:
    def eq(c: Columns, i: int) -> bool:
        v = c[col][i]
        if type(v) is not str:
            v = _text(v)
        return v is not None and v == literal

    return eq


def _number(col: str, number: float) -> Pred:
    def eq(c: Columns, i: int) -> bool:
        v = c[col][i]
        if v is None:
            return False
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FallbackError(type(v).__name__)
        return bool(v == number)

    return eq


def _any_of(col: str, kind: str, literals: list[str]) -> Pred:
    """`values.any_of`: equal to / containing / starting / ending with any literal."""
    if kind == "eq":
        wanted = frozenset(literals)

        def is_in(c: Columns, i: int) -> bool:
            v = c[col][i]
            if type(v) is not str:
                v = _text(v)
            return v is not None and v in wanted

        return is_in
    if kind == "contains":
        if "" in literals:  # every text contains the empty string
            return lambda c, i: _text(c[col][i]) is not None
        if len(literals) > _FEW:  # one automaton pass, built once (emoji lists: hundreds)
            find = AhoCorasick(literals).find_matches_as_indexes

            def contains_any(c: Columns, i: int) -> bool:
                v = _text(c[col][i])
                return v is not None and bool(find(v))

            return contains_any
        lits = tuple(literals)

        def contains(c: Columns, i: int) -> bool:
            v = c[col][i]
            if type(v) is not str:
                v = _text(v)
                if v is None:
                    return False
            for s in lits:  # noqa: SIM110 (a loop: any() over a generator costs a frame per call)
                if s in v:
                    return True
            return False

        return contains
    ends = tuple(literals)
    if kind == "startswith":

        def starts(c: Columns, i: int) -> bool:
            v = c[col][i]
            if type(v) is not str:
                v = _text(v)
            return v is not None and v.startswith(ends)

        return starts

    def ends_with(c: Columns, i: int) -> bool:
        v = c[col][i]
        if type(v) is not str:
            v = _text(v)
        return v is not None and v.endswith(ends)

    return ends_with


_PLAIN = re.compile(r"[^\x20-\x7e\t\r\n]")  # a character outside printable ASCII
_CLASS_OPS = re.compile(r"\[[^\]]*(?:&&|--|~~)")  # Rust's class intersection / differences


def _regex(col: str, pattern: str) -> Pred:
    r"""``|re``. A pattern Rust's regex rejects is Python's ``re`` in Polars too (the same
    call here). One Rust accepts runs on RE2 (linear time like Rust's; Python's ``re`` can
    backtrack for seconds), whose syntax Rust's follows: on printable ASCII text the two
    agree (they differ in Unicode classes: ``\d`` / ``\w`` / ``\s`` are ASCII in RE2), so
    any other text goes to Polars; patterns RE2 reads otherwise (class set operations, the
    ``x`` flag's whitespace rules) or rejects are never taken."""
    if not rust_regex_ok(pattern):
        search = re.compile(pattern).search

        def python_regex(c: Columns, i: int) -> bool:
            v = _text(c[col][i])
            return v is not None and search(v) is not None

        return python_regex
    if re.search(r"\(\?[a-zA-Z-]*x", pattern) or _CLASS_OPS.search(pattern):
        raise UnsupportedError("a regular expression RE2 reads otherwise")
    try:
        compiled = re2.compile(pattern, _RE2)
    except re2.error as exc:
        raise UnsupportedError(f"not an RE2 regular expression: {exc}") from exc
    find = compiled.search

    def regex(c: Columns, i: int) -> bool:
        v = _text(c[col][i])
        if v is None:
            return False
        if _PLAIN.search(v) is not None:
            raise FallbackError("text outside printable ASCII")
        return find(v) is not None

    return regex


def _cidr(col: str, value: SigmaCIDRExpression) -> Pred:
    """`values.cidr_match`: the address patterns pySigma expands the range to."""
    return _any([_parts(col, p) for p in cidr_parts(value)])


def _fieldref(col: str, other: str, value: SigmaFieldReference) -> Pred:
    def ref(c: Columns, i: int) -> bool:
        v, w = _text(c[col][i]), _text(c[other][i])
        if v is None or w is None:
            return False
        if value.starts_with and value.ends_with:
            return w in v
        if value.starts_with:
            return v.startswith(w)
        if value.ends_with:
            return v.endswith(w)
        return v == w

    return ref


def _any(preds: list[Pred]) -> Pred:
    return _joined(preds, True)


def _all(preds: list[Pred]) -> Pred:
    return _joined(preds, False)


def _joined(preds: list[Pred], decides: bool) -> Pred:
    """``preds`` as one predicate under ``any`` (``decides`` True: the first true branch
    decides) or ``all`` (False: the first false one does); one alone as itself. Written as
    plain loops, not ``any()`` over a generator: that made a generator frame per node and
    pair, a third of the predicate time of a micro-batch's process-creation rules."""
    if not preds:
        raise UnsupportedError("empty condition")
    if len(preds) == 1:
        return preds[0]
    group = tuple(preds)
    if decides:

        def any_of(c: Columns, i: int) -> bool:
            for p in group:  # noqa: SIM110 (see the docstring)
                if p(c, i):
                    return True
            return False

        return any_of

    def all_of(c: Columns, i: int) -> bool:
        for p in group:  # noqa: SIM110 (see the docstring)
            if not p(c, i):
                return False
        return True

    return all_of
