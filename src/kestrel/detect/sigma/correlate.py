"""Sigma correlation rules over the base-rule matches of a batch: ``event_count``,
``value_count`` and ``temporal``, in sliding windows of the rule's timespan per group.

The base rules are ordinary rules the engine already matched; a correlation only looks at
their (rule, row) matches, so its cost is in matches, not events. Each match closes a window
``(time - timespan, time]`` over the matches of its group (Polars ``rolling``), and the
window's count of events / distinct values / distinct base rules is tested
against the condition. A firing window becomes a (correlation, row) match for each of its
events. Windows do not span batches: state between batches is not kept (the pipeline's
hourly slices are the usual batch). ``temporal_ordered``, the ``value_sum`` family, extended
conditions and field aliases are reported as not supported, with the rule.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from kestrel.detect.sigma.compile import RAW_PREFIX, RuleMeta, meta_of
from kestrel.detect.sigma.frame import ROW, source_fields
from kestrel.detect.sigma.load import RuleError, RuleIssue, rule_source
from kestrel.detect.sigma.prefilter import PAIR_SCHEMA, RULE
from kestrel.events import SCHEMA

_OPS: dict[SigmaCorrelationConditionOperator, Callable[[pl.Expr, float], pl.Expr]] = {
    SigmaCorrelationConditionOperator.LT: operator.lt,
    SigmaCorrelationConditionOperator.LTE: operator.le,
    SigmaCorrelationConditionOperator.GT: operator.gt,
    SigmaCorrelationConditionOperator.GTE: operator.ge,
    SigmaCorrelationConditionOperator.EQ: operator.eq,
    SigmaCorrelationConditionOperator.NEQ: operator.ne,
}
_SUPPORTED = (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT,
              SigmaCorrelationType.TEMPORAL)  # fmt: skip
_COUNT = "__count"
_WINDOW = "__window"


@dataclass(frozen=True, slots=True)
class Correlation:
    """One correlation rule, ready to run over the matches of its base rules."""

    meta: RuleMeta
    kind: SigmaCorrelationType
    rules: tuple[str, ...]  # base rule ids
    group_by: tuple[str, ...]
    seconds: int
    test: Callable[[pl.Expr], pl.Expr]
    field: str | None = None  # value_count: the field whose distinct values are counted


def compile_correlations(
    rules: Sequence[SigmaCorrelationRule],
) -> tuple[list[Correlation], list[RuleIssue]]:
    """Compile each correlation; unsupported ones come back as issues with the reason."""
    out, issues = [], []
    for rule in rules:
        try:
            out.append(compile_correlation(rule))
        except RuleError as exc:
            issues.append(RuleIssue(rule_source(rule), str(exc), str(rule.id), rule.title))
    return out, issues


def compile_correlation(rule: SigmaCorrelationRule) -> Correlation:
    """Raises:
    RuleError: a correlation type or condition the engine does not evaluate."""
    cond = rule.condition
    if rule.type not in _SUPPORTED:
        raise RuleError(f"correlation type {rule.type} is not supported")
    if not isinstance(cond, SigmaCorrelationCondition) or rule.aliases.aliases:
        raise RuleError("extended correlation conditions and field aliases are not supported")
    field = cond.fieldref if isinstance(cond.fieldref, str) else None
    if rule.type is SigmaCorrelationType.VALUE_COUNT and field is None:
        raise RuleError("value_count needs one field")
    ids = tuple(str(r.rule.id) for r in rule.rules or ())
    return Correlation(
        meta_of(rule), rule.type, ids, tuple(rule.group_by or ()), rule.timespan.seconds,
        lambda c: _OPS[cond.op](c, cond.count), field,
    )  # fmt: skip


def correlate(
    corr: Correlation, index: int, events: pl.DataFrame, matches: pl.DataFrame, ids: list[str]
) -> pl.DataFrame:
    """(``index``, row) for every event of a window in which ``corr`` holds. ``matches`` are
    the engine's (rule, row) over ``events`` (with ``ROW``); ``ids`` its rule ids by index."""
    base = [i for i, rid in enumerate(ids) if rid in corr.rules]
    mine = matches.filter(pl.col(RULE).is_in(base))
    if mine.is_empty():
        return pl.DataFrame(schema=PAIR_SCHEMA)
    rows = mine.get_column(ROW).unique().sort()
    frame = _values(events, rows, [*corr.group_by, *([corr.field] if corr.field else [])])
    joined = mine.join(frame, on=ROW).sort("time")
    keys = [_column(f) for f in corr.group_by]
    windows = joined.rolling("time", period=f"{corr.seconds}s", group_by=keys or None)
    counted = windows.agg(_measure(corr).alias(_COUNT), pl.col(ROW).alias(_WINDOW))
    fired = counted.filter(corr.test(pl.col(_COUNT))).select(pl.col(_WINDOW).explode())
    found = fired.get_column(_WINDOW).unique().cast(pl.UInt32)
    return pl.DataFrame({RULE: [index] * len(found), ROW: found}, schema=PAIR_SCHEMA)


def _measure(corr: Correlation) -> pl.Expr:
    if corr.kind is SigmaCorrelationType.VALUE_COUNT and corr.field:
        return pl.col(_column(corr.field)).n_unique()
    if corr.kind is SigmaCorrelationType.TEMPORAL:
        return pl.col(RULE).n_unique()
    return pl.len()


def _column(field: str) -> str:
    return field if field in SCHEMA.names else RAW_PREFIX + field


def _values(events: pl.DataFrame, rows: pl.Series, fields: list[str]) -> pl.DataFrame:
    """``time`` and the group-by / value fields of ``rows``: schema columns as they are,
    source fields out of ``raw``."""
    columns = [f for f in fields if f in SCHEMA.names]
    sub = events.select(ROW, "time", "raw", "source", *columns).gather(rows)
    raw = sorted({f for f in fields if f not in SCHEMA.names})
    return sub.with_columns(source_fields(sub, raw)) if raw else sub
