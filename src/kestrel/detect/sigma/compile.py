"""Sigma rule → `CompiledRule`: a Polars expression, the columns it reads, its logsource
dispatch and its prefilter literals.

The rule is first put into Kestrel's terms by the pySigma pipeline (`pipelines.py`); its
condition tree (pySigma's ``parsed_condition``, with ``1 of`` / ``all of`` already resolved)
is then walked once. A field that names a schema column is read from that column; any other
field is a *source field*, read from ``raw`` by the engine (``raw:<Field>`` in the frame).
A rule that cannot be compiled raises `RuleError` with the reason; `compile_rules` collects
those so one bad rule never stops the others.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import SigmaType

from kestrel.detect.sigma.literals import Clauses, any_clauses, clauses
from kestrel.detect.sigma.load import RuleError, RuleIssue, rule_source
from kestrel.detect.sigma.pipelines import Dispatch, kestrel_pipeline, logsource_dispatch
from kestrel.detect.sigma.pyeval import Names, Pred, predicate
from kestrel.detect.sigma.values import (
    Kind,
    all_,
    any_,
    any_of,
    keyword_parts,
    match_value,
    parts_match,
    plain_kind,
)
from kestrel.events import SCHEMA

_INT_COLUMNS = frozenset(f.name for f in SCHEMA if f.type == "int64")
_COLUMNS = frozenset(SCHEMA.names) - {"raw"}
RAW_PREFIX = "raw:"
LOWER_PREFIX = "lc:"
KEYWORDS = LOWER_PREFIX + "raw"  # what a keyword (a value without a field) searches


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What a finding needs to know about the rule that made it."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    source: str
    logsource: str


@dataclass(slots=True)
class CompiledRule:
    """One rule, ready to evaluate over an evaluation frame (see `engine.py`)."""

    meta: RuleMeta
    dispatch: Dispatch
    expr: pl.Expr
    literals: Clauses  # the prefilter: every clause must have a literal in the record
    columns: set[str] = field(default_factory=set)  # frame columns the expression reads
    fields: tuple[str, ...] = ()  # the rule's fields, for the finding's matched-field detail
    pred: Pred | None = None  # the same rule in Python, for few candidates (`pyeval.py`)
    # a necessary condition that reads schema columns only (see `guard`), for rules that read
    # source fields: checked first, so ``raw`` is decoded only for the events that pass it
    guard: pl.Expr | None = None
    guard_columns: set[str] = field(default_factory=set)

    @property
    def reads_raw(self) -> bool:
        """Whether evaluating the rule needs ``raw`` decoded (source fields) or lowered
        (keywords): the costly frame columns."""
        return any(map(_costly, self.columns))


@dataclass(slots=True)
class _Refs:
    """Frame columns an expression reads, gathered while compiling."""

    names: set[str] = field(default_factory=set)
    fields: list[str] = field(default_factory=list)

    def resolve(self, name: str, lower: bool) -> pl.Expr:
        return pl.col(self.column(name, lower))

    def column(self, name: str, lower: bool) -> str:
        """The frame column holding field ``name`` (lower-cased if ``lower``), noted as read."""
        data = name if name in _COLUMNS else RAW_PREFIX + name
        if lower and name not in _INT_COLUMNS:
            data = LOWER_PREFIX + data
        self.names.add(data)
        if name not in self.fields:
            self.fields.append(name)
        return data


def compile_rule(rule: SigmaRule, pipeline: ProcessingPipeline | None = None) -> CompiledRule:
    """Compile one rule (a deep copy goes through the pipeline; the input is untouched).

    Raises:
        RuleError: the rule uses something the engine cannot evaluate; the message says what.
    """
    work = copy.deepcopy(rule)
    try:
        (pipeline or kestrel_pipeline()).apply(work)
        trees = [c.parsed for c in work.detection.parsed_condition]
    except SigmaError as exc:
        raise RuleError(str(exc), rule_source(rule)) from exc
    refs = _Refs()
    exprs = [_node(t, refs) for t in trees if t is not None]
    if not exprs:
        raise RuleError("the condition is empty", rule_source(rule))
    literals = any_clauses([clauses(t) for t in trees if t is not None])
    pred = predicate(trees, Names(refs.column, _INT_COLUMNS.__contains__, KEYWORDS))
    compiled = CompiledRule(
        meta_of(rule), logsource_dispatch(rule.logsource), any_(exprs).fill_null(False), literals,
        refs.names, tuple(refs.fields), pred,
    )  # fmt: skip
    if compiled.reads_raw and len(exprs) == 1:
        compiled.guard, compiled.guard_columns = guard(next(t for t in trees if t is not None))
    return compiled


def guard(tree: object) -> tuple[pl.Expr | None, set[str]]:
    """The conjuncts of ``tree`` that read no source field and no keyword, as one expression
    (null → false), with the columns it reads; None if there are none.

    The rule is true only where each conjunct is true: ``a and b``; ``not (a or b)`` is
    ``not a and not b`` (Kleene: ``a or b`` false or null leaves neither true, so the filled
    ``not a`` holds). So an event the guard rejects cannot match, and checking it first on
    cheap schema columns spares decoding ``raw`` for it: "Signed DLL loaded with missing PE
    metadata" has nearly every image load as a candidate (``Signed: true``), while its
    ``not ImageLoaded|startswith: 'C:\\Windows\\System32\\' ...`` keeps a few."""
    cheap: list[pl.Expr] = []
    names: set[str] = set()
    for node, negated in _conjuncts(tree):
        refs = _Refs()
        expr = _node(node, refs).fill_null(False)
        if any(map(_costly, refs.names)):
            continue
        cheap.append(~expr if negated else expr)
        names |= refs.names
    return (all_(cheap), names) if cheap else (None, set())


def _costly(column: str) -> bool:
    """Whether a frame column comes out of ``raw`` (a source field, or the keyword text)."""
    return column.startswith((RAW_PREFIX, LOWER_PREFIX + RAW_PREFIX)) or column == KEYWORDS


def _conjuncts(node: object) -> list[tuple[object, bool]]:
    """(node, negated) whose conjunction ``node`` implies (see `guard`)."""
    if isinstance(node, ConditionAND):
        return [c for a in node.args for c in _conjuncts(a)]
    if isinstance(node, ConditionNOT):
        inner = node.args[0]
        if isinstance(inner, ConditionOR):
            return [(a, True) for a in inner.args]
        return [(inner, True)]
    return [(node, False)]


def compile_rules(
    rules: Iterable[SigmaRule], on_error: Literal["raise", "collect"] = "collect"
) -> tuple[list[CompiledRule], list[RuleIssue]]:
    """Compile every rule; the ones that fail are returned as issues (or raise, on request)."""
    pipeline = kestrel_pipeline()
    compiled: list[CompiledRule] = []
    issues: list[RuleIssue] = []
    for rule in rules:
        try:
            compiled.append(compile_rule(rule, pipeline))
        except RuleError as exc:
            if on_error == "raise":
                raise
            issues.append(RuleIssue(rule_source(rule), _reason(exc), str(rule.id), rule.title))
    return compiled, issues


def _reason(exc: RuleError) -> str:
    text = str(exc)
    return text[len(exc.source) + 2 :] if exc.source and text.startswith(exc.source) else text


def _node(node: object, refs: _Refs) -> pl.Expr:
    if isinstance(node, ConditionAND):
        return all_([_node(a, refs) for a in node.args])
    if isinstance(node, ConditionOR):
        return any_(_or_args(node.args, refs))
    if isinstance(node, ConditionNOT):
        return ~_node(node.args[0], refs).fill_null(False)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        numeric = node.field in _INT_COLUMNS
        return match_value(node.field, node.value, refs.resolve, numeric)
    if isinstance(node, ConditionValueExpression):
        return _keyword(node.value, refs)
    raise RuleError(f"condition element {type(node).__name__} is not supported")


def _or_args(args: Iterable[object], refs: _Refs) -> list[pl.Expr]:
    """The branches of an ``or``; plain values of one field with the same kind (``Image|endswith:
    [a, b, c]``) become one operation over the field instead of one per value."""
    groups: dict[tuple[str, Kind], list[str]] = {}
    out: list[pl.Expr] = []
    for arg in args:
        plain = _plain(arg)
        if plain is None:
            out.append(_node(arg, refs))
        else:
            groups.setdefault(plain[0], []).append(plain[1])
    for (name, kind), literals in groups.items():
        out.append(any_of(refs.resolve(name, True), kind, literals))
    return out


def _plain(arg: object) -> tuple[tuple[str, Kind], str] | None:
    if not isinstance(arg, ConditionFieldEqualsValueExpression) or arg.field in _INT_COLUMNS:
        return None
    found = plain_kind(arg.value)
    return ((arg.field, found[0]), found[1]) if found else None


def _keyword(value: SigmaType, refs: _Refs) -> pl.Expr:
    """A value without a field: a substring of the whole record (``raw``, lower-cased, so the
    value's characters are JSON-escaped the way they appear there)."""
    refs.names.add(KEYWORDS)
    return parts_match(pl.col(KEYWORDS), keyword_parts(value)).fill_null(False)


def meta_of(rule: SigmaRule | SigmaCorrelationRule) -> RuleMeta:
    """What a finding needs to know about a rule (correlations: logsource ``correlation``)."""
    ls = getattr(rule, "logsource", None)
    parts = (ls.product, ls.category, ls.service) if ls is not None else ("correlation",)
    logsource = "/".join(str(p or "*") for p in parts)
    level = str(rule.level) if rule.level is not None else "medium"
    tags = tuple(f"{t.namespace}.{t.name}" for t in rule.tags)
    return RuleMeta(
        str(rule.id or rule.title), rule.title, level, tags, rule_source(rule), logsource
    )
