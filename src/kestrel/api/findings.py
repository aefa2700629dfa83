"""Findings with their triage status: the list, the detail, and the status workflow.

The findings come from the `FindingsSource`; their statuses, history and the suppressions
that false positives feed back live in the management tables. Routes and dashboard pages
both call these functions, so the two cannot disagree.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kestrel.api.auth import Principal
from kestrel.api.deps import ApiState, FindingQuery
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


def statuses(state: ApiState) -> dict[str, Status]:
    """The current status of every finding that has left ``new``."""
    with state.lock:
        latest = state.mgmt.statuses()
    return {fid: Status(c.status) for fid, c in latest.items()}


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
        history = state.mgmt.history(f.finding_id)  # the surviving id after a merge
        events = evidence_events(state, f)
        suppressions = _suppressions_of(state, f)
    current = Status(history[-1].status) if history else Status.NEW
    base = FindingOut.from_finding(f, current).model_dump()
    return FindingDetail(
        **base,
        signals=[SignalOut.from_signal(s) for s in f.signals],
        evidence=list(f.evidence),
        evidence_events=events,
        history=[StatusChangeOut(status=Status(h.status), note=h.note, actor=h.actor,
                                 time=h.time) for h in history],
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
        history = state.mgmt.history(finding_id)
        current = Status(history[-1].status) if history else Status.NEW
        if to not in TRANSITIONS[current]:
            raise WorkflowError(f"a {current} finding cannot become {to}")
        state.mgmt.set_status(StatusChange(finding_id, str(to), note, who.actor, now()))
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
