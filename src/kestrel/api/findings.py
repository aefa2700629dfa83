"""Findings with their triage status: the list, the detail, and the status workflow.

The findings come from the `FindingsSource`; their statuses, history and the suppressions
that false positives feed back live in the management tables. Routes and dashboard pages
both call these functions, so the two cannot disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kestrel.api.auth import Principal
from kestrel.api.deps import ApiState, FindingQuery
from kestrel.api.findings_store import StoreFindings
from kestrel.api.schemas import (
    TRANSITIONS,
    FindingDetail,
    FindingOut,
    FindingPage,
    SignalOut,
    Status,
    StatusChangeOut,
    StatusUpdate,
    SuppressionOut,
)
from kestrel.findings import Finding
from kestrel.store.management import StatusChange, Suppression, now

MAX_EVIDENCE = 200
_EVIDENCE_COLUMNS = (
    "event_id", "time", "class", "activity", "source", "source_event", "host", "user_name",
    "process_name", "process_cmdline", "file_path", "src_ip", "dst_ip", "dst_port",
    "cloud_operation", "cloud_principal", "metric_name", "metric_value",
)  # fmt: skip


class WorkflowError(Exception):
    """A status change the workflow does not allow (answered with 409)."""


# How far along the workflow a status is: when merges fold findings into one, the merged
# finding takes the most advanced of their statuses (a later one among equals).
_RANK = {Status.NEW: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2, Status.FALSE_POSITIVE: 2}


def statuses(state: ApiState) -> dict[str, Status]:
    """The current status of every finding that has left ``new`` (merged findings: see
    `merged_status`)."""
    with state.lock:
        latest = state.mgmt.statuses()
        folded = _folded(state)
    current = {fid: Status(c.status) for fid, c in latest.items()}
    for survivor, taken in folded.items():
        found = merged_status([latest[i] for i in (survivor, *taken) if i in latest])
        if found is not None:
            current[survivor] = found
    return current


def merged_status(latest: list[StatusChange]) -> Status | None:
    """The status of a finding that merges folded others into, from the latest change of
    each: the most advanced, the later one among equals. (A change made to the merged
    finding is recorded under every id it folded in, so it is the latest of each and a
    resolved finding reopened stays reopened.)"""
    if not latest:
        return None
    return Status(max(latest, key=lambda c: (_RANK[Status(c.status)], c.time)).status)


def _folded(state: ApiState) -> dict[str, list[str]]:
    """Surviving finding id → the ids merges folded into it (none for a source that does
    not merge)."""
    return state.findings.folded() if isinstance(state.findings, StoreFindings) else {}


def _history(state: ApiState, finding_id: str) -> tuple[list[StatusChange], Status]:
    """Every status change of a finding and of those merged into it, oldest first, and
    its current status."""
    ids = (finding_id, *_folded(state).get(finding_id, []))
    changes = sorted((c for i in ids for c in state.mgmt.history(i)), key=lambda c: c.time)
    latest = {c.finding_id: c for c in changes}
    history: dict[tuple[str, str, str, datetime], StatusChange] = {}
    for c in changes:  # one change made to the merged finding is shown once
        history.setdefault((c.status, c.note, c.actor, c.time), c)
    return list(history.values()), merged_status(list(latest.values())) or Status.NEW


def with_status(state: ApiState) -> list[tuple[Finding, str]]:
    """Every finding and its status (for the metrics gauge)."""
    current = statuses(state)
    return [(f, str(current.get(f.finding_id, Status.NEW))) for f in _all(state)]


def _all(state: ApiState) -> list[Finding]:
    with state.lock:
        return state.findings.findings(FindingQuery())


def page(
    state: ApiState, query: FindingQuery, status: Status | None, limit: int, offset: int
) -> FindingPage:
    """One page of findings matching ``query`` and ``status``, newest first."""
    with state.lock:
        found = state.findings.findings(query)
    current = statuses(state)
    rows = [(f, current.get(f.finding_id, Status.NEW)) for f in found]
    if status is not None:
        rows = [r for r in rows if r[1] is status]
    items = [FindingOut.from_finding(f, st) for f, st in rows[offset : offset + limit]]
    return FindingPage(total=len(rows), items=items)


def detail(state: ApiState, finding_id: str) -> FindingDetail | None:
    """A finding with signals, evidence events and history; None when unknown."""
    with state.lock:
        f = state.findings.finding(finding_id)
        if f is None:
            return None
        history, current = _history(state, f.finding_id)  # the surviving id after a merge
        events = evidence_events(state, f)
        suppressions = _suppressions_of(state, f)
    base = FindingOut.from_finding(f, current).model_dump()
    return FindingDetail(
        **base,
        signals=[SignalOut.from_signal(s) for s in f.signals],
        evidence=list(f.evidence),
        evidence_events=events,
        history=[StatusChangeOut(status=Status(h.status), note=h.note, actor=h.actor,
                                 time=h.time, finding_id=h.finding_id) for h in history],
        window_seconds=getattr(f, "window_seconds", None), suppressions=suppressions,
    )  # fmt: skip


def _suppressions_of(state: ApiState, f: Finding) -> list[SuppressionOut]:
    """The suppressions recorded for ``f``'s detector and entity, newest first."""
    at = now()
    mine = [
        s
        for s in state.mgmt.suppressions()
        if (s.detector, s.entity_type, s.entity_id) == (f.detector, f.entity.type, f.entity.id)
    ]
    return [SuppressionOut(finding_id=s.finding_id, signals=list(s.signals), note=s.note,
                           actor=s.actor, time=s.time, expires=s.expires, active=s.active(at))
            for s in reversed(mine)]  # fmt: skip


def evidence_events(state: ApiState, f: Finding) -> list[dict[str, Any]]:
    """The stored events a finding names (the first `MAX_EVIDENCE`), oldest first."""
    ids = list(f.evidence[:MAX_EVIDENCE])
    if not ids:
        return []
    cols = ", ".join(f'"{c}"' for c in _EVIDENCE_COLUMNS)
    marks = ", ".join("?" for _ in ids)
    sql = f"SELECT {cols} FROM events WHERE event_id IN ({marks}) ORDER BY time, event_id"
    rows: list[dict[str, Any]] = state.store.query(sql, ids).to_pylist()
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def change_status(
    state: ApiState, finding_id: str, update: StatusUpdate, who: Principal
) -> FindingOut | None:
    """Move a finding on; a false positive also records a suppression. Audited."""
    to, note = update.status, update.note
    with state.lock:
        f = state.findings.finding(finding_id)
        if f is None:
            return None
        finding_id = f.finding_id  # the surviving id, when a merge folded this one in
        _, current = _history(state, finding_id)
        if to not in TRANSITIONS[current]:
            raise WorkflowError(f"a {current} finding cannot become {to}")
        at = now()
        for fid in (finding_id, *_folded(state).get(finding_id, [])):  # see merged_status
            state.mgmt.set_status(StatusChange(fid, str(to), note, who.actor, at))
        state.mgmt.audit(who.actor, "finding.status", finding_id,
                         {"from": str(current), "to": str(to), "note": note})  # fmt: skip
        if to is Status.FALSE_POSITIVE:
            _suppress(state, f, update, who)
    return FindingOut.from_finding(f, to)


def _suppress(state: ApiState, f: Finding, update: StatusUpdate, who: Principal) -> None:
    """Record (and audit) the suppression a false positive feeds back to detection: this
    detector, entity and signal set, for ``suppress_days`` or until removed."""
    t = now()
    days = update.suppress_days
    s = Suppression(f.detector, f.entity.type, f.entity.id, f.finding_id, update.note,
                    who.actor, t, tuple(sorted({sig.name for sig in f.signals})),
                    t + timedelta(days=days) if days else None)  # fmt: skip
    state.mgmt.suppress(s)
    state.mgmt.audit(who.actor, "suppression.create", f.finding_id,
                     {"detector": s.detector, "entity": str(f.entity), "signals": s.signals,
                      "expires": s.expires})  # fmt: skip
