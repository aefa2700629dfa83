"""Suppressions: what an analyst's false positive feeds back to detection.

Why after the detectors and not inside them: detectors are pure (batches in, findings out)
and do not know the store; the runner drops a new finding when an active suppression names
its detector and entity and covers every one of its signals. The detector still learns from
the events (its baselines must stay true), only the finding is not raised again. A finding
with a signal the suppression did not cover is new evidence and is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kestrel.findings import Finding
from kestrel.store import Store
from kestrel.store.management import ManagementStore, Suppression, now


def suppressed_by(f: Finding, s: Suppression, at: datetime) -> bool:
    """Whether ``s`` holds at ``at`` and covers ``f`` (same detector and entity, and no
    signal outside the suppression's signals; a suppression without signals covers all)."""
    same = (f.detector, f.entity.type, f.entity.id) == (s.detector, s.entity_type, s.entity_id)
    covered = not s.signals or {sig.name for sig in f.signals} <= set(s.signals)
    return same and covered and s.active(at)


def split_suppressed(
    findings: Iterable[Finding], suppressions: list[Suppression], at: datetime
) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed)."""
    kept: list[Finding] = []
    dropped: list[Finding] = []
    for f in findings:
        hit = any(suppressed_by(f, s, at) for s in suppressions)
        (dropped if hit else kept).append(f)
    return kept, dropped


def active_suppressions(store: Store) -> list[Suppression]:
    """The suppressions holding now (the management tables are created when missing)."""
    return ManagementStore(store).suppressions(active_at=now())
