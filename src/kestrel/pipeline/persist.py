"""`Finding` ↔ the store's findings rows, with merging on save.

A new finding and a stored one of the same detector and entity whose spans overlap (or lie
within ``gap``) become one row, so repeated runs extend a finding instead of adding another.
The row keeps the stored finding's id (`Finding.key`): an analyst's status, a suppression
or a link recorded under that id must survive the finding growing. When one new span joins
two stored findings, the later one's id is kept as an alias of the earlier.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.findings.correlate import merge_findings
from kestrel.store import Store
from kestrel.store.findings import FindingsTable


def save_findings(
    store: Store, findings: Iterable[Finding], gap: timedelta = timedelta(minutes=5)
) -> int:
    """Merge ``findings`` with overlapping stored ones and write them; the rows written."""
    new = list(findings)
    if not new:
        return 0
    table = FindingsTable(store)
    lo = min(f.first_seen for f in new) - gap
    hi = max(f.last_seen for f in new) + gap
    keys = {(f.detector, f.entity) for f in new}
    stored = [
        f
        for f in map(to_finding, table.select("last_seen >= ? AND first_seen <= ?", [lo, hi]))
        if (f.detector, f.entity) in keys
    ]
    merged = merge_findings([*stored, *new], gap)
    written = table.replace([f.finding_id for f in stored], map(to_row, merged))
    table.add_aliases(absorbed(stored, merged))
    return written


def absorbed(stored: list[Finding], merged: list[Finding]) -> dict[str, str]:
    """Stored ids that no merged finding kept → the id of the finding that took them in."""
    kept = {f.finding_id for f in merged}
    out: dict[str, str] = {}
    for s in stored:
        if s.finding_id in kept:
            continue
        for m in merged:
            if _covers(m, s):
                out[s.finding_id] = m.finding_id
                break
    return out


def _covers(m: Finding, s: Finding) -> bool:
    return (m.detector, m.entity) == (s.detector, s.entity) and (
        m.first_seen <= s.first_seen and s.last_seen <= m.last_seen
    )


def load_findings(
    store: Store, severity: Severity | None = None, since: datetime | None = None
) -> list[Finding]:
    """Stored findings at or above ``severity``, last seen at or after ``since``."""
    clauses: list[str] = []
    params: list[Any] = []
    if severity is not None:
        clauses.append("severity >= ?")
        params.append(int(severity))
    if since is not None:
        clauses.append("last_seen >= ?")
        params.append(since)
    return [to_finding(r) for r in FindingsTable(store).select(" AND ".join(clauses), params)]


def to_row(f: Finding) -> dict[str, Any]:
    """A finding as a findings-table row."""
    signals = [
        {"name": s.name, "value": s.value, "threshold": s.threshold, "detail": s.detail,
         "kind": s.kind} for s in f.signals
    ]  # fmt: skip
    return {
        "finding_id": f.finding_id, "detector": f.detector, "entity_type": f.entity.type,
        "entity_id": f.entity.id, "first_seen": f.first_seen, "last_seen": f.last_seen,
        "severity": int(f.severity), "title": f.title,
        "techniques": json.dumps(list(f.techniques)), "signals": json.dumps(signals),
        "evidence": json.dumps(list(f.evidence)), "source_ids": json.dumps(list(f.source_ids)),
        "tags": json.dumps(list(f.tags)), "window_seconds": f.window_seconds,
    }  # fmt: skip


def to_finding(r: dict[str, Any]) -> Finding:
    """A findings-table row as a finding."""
    return Finding(
        detector=r["detector"],
        entity=Entity(r["entity_type"], r["entity_id"]),
        first_seen=r["first_seen"],
        last_seen=r["last_seen"],
        severity=Severity(r["severity"]),
        signals=tuple(Signal(**s) for s in json.loads(r["signals"])),
        title=r["title"],
        techniques=tuple(json.loads(r["techniques"])),
        evidence=tuple(json.loads(r["evidence"])),
        source_ids=tuple(json.loads(r["source_ids"])),
        tags=tuple(json.loads(r["tags"])),
        window_seconds=r["window_seconds"],
        key=r["finding_id"],
    )
