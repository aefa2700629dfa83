"""Rule matches → `Finding`s: one per rule, entity and burst of activity.

Matches of the same rule on the same entity merge while each follows the previous one within
``window`` (a session window, computed with one Polars ``group_by``), so a noisy rule gives
one finding with many evidence ids, not thousands of findings. Only the merged groups become
Python objects; the matches themselves stay columnar.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from functools import cache

import polars as pl

from kestrel.detect.sigma.compile import CompiledRule
from kestrel.detect.sigma.engine import RULE
from kestrel.detect.sigma.frame import ROW, build_frame
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.findings.attack import mitre_dir, technique_names

DETECTOR = "sigma"
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$")
_SESSION = "__session"


def findings_from_matches(
    rules: Sequence[CompiledRule],
    batch: Batch,
    matches: pl.DataFrame,
    window: timedelta = timedelta(hours=1),
) -> list[Finding]:
    """Group ``matches`` (rule, row) by rule, entity and session window into findings."""
    if matches.is_empty():
        return []
    events = pl.from_arrow(batch)
    assert isinstance(events, pl.DataFrame)
    groups = _sessions(_joined(events, matches), window)
    return [_finding(rules[g[RULE]], events, g) for g in groups.iter_rows(named=True)]


def _joined(events: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    meta = events.with_row_index(ROW).select(
        ROW,
        "event_id",
        "time",
        pl.coalesce("entity_type", pl.lit("host")).alias("etype"),
        pl.coalesce("entity_id", "host", pl.lit("unknown")).alias("eid"),
    )
    return matches.join(meta, on=ROW).sort(RULE, "etype", "eid", "time")


def _sessions(joined: pl.DataFrame, window: timedelta) -> pl.DataFrame:
    gap = pl.col("time").diff().over(RULE, "etype", "eid") > window
    return (
        joined.with_columns(
            gap.fill_null(False).cum_sum().over(RULE, "etype", "eid").alias(_SESSION)
        )
        .group_by(RULE, "etype", "eid", _SESSION, maintain_order=True)
        .agg(
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
            pl.col("event_id").alias("evidence"),
            pl.col(ROW).first().alias("first_row"),
        )
    )


def _finding(rule: CompiledRule, events: pl.DataFrame, group: dict[str, object]) -> Finding:
    meta = rule.meta
    detail = matched_fields(rule, events, int(str(group["first_row"])))
    signal = Signal(f"sigma:{meta.id}", meta.title, None, json.dumps(detail, sort_keys=True))
    evidence = tuple(str(e) for e in group["evidence"])  # type: ignore[attr-defined]
    return Finding(
        detector=DETECTOR,
        entity=Entity(str(group["etype"]), str(group["eid"])),
        first_seen=group["first"],  # type: ignore[arg-type]
        last_seen=group["last"],  # type: ignore[arg-type]
        severity=Severity.parse(meta.level),
        signals=(signal,),
        title=meta.title,
        techniques=techniques(meta.tags),
        evidence=evidence,
        tags=(f"sigma.logsource:{meta.logsource}", *meta.tags),
    )


def techniques(tags: Sequence[str]) -> tuple[str, ...]:
    """ATT&CK technique ids from Sigma tags, only those in MITRE's tables when they are there:
    SigmaHQ tags some rules with ids newer than our ATT&CK release (e.g. T1685.002), which
    would reach the Navigator layer and the API without a name. The rule's own tags, kept on
    the finding, still show them.

    >>> techniques(["attack.execution", "attack.t1059.001", "attack.t1105"])
    ('T1059.001', 'T1105')
    """
    found = (_TECHNIQUE.match(t.lower()) for t in tags)
    ids = tuple(m.group(1).upper() for m in found if m)
    known = _known_ids()
    return ids if known is None else tuple(t for t in ids if t in known)


@cache
def _known_ids() -> frozenset[str] | None:
    """MITRE's technique ids, or None when the tables are not found (then nothing is
    dropped: a rule's tags are better than none)."""
    return None if mitre_dir() is None else frozenset(technique_names())


def matched_fields(rule: CompiledRule, events: pl.DataFrame, row: int) -> dict[str, str]:
    """The values of the rule's fields on one matching event (the finding's "why")."""
    names = {n for n in rule.columns if not n.startswith("lc:")}
    frame = build_frame(events.with_row_index(ROW), pl.Series([row], dtype=pl.UInt32), names)
    values = frame.row(0, named=True) if frame.height else {}
    out: dict[str, str] = {}
    for field in rule.fields:
        value = values.get(field, values.get(f"raw:{field}"))
        if value is not None:
            out[field] = str(value)[:500]
    return out
