"""Entities as the events and findings show them: a list, a profile, a timeline.

Baselines come from a `BaselineSource` when the pipeline provides one (its per-entity
Welford state); until then a profile lists none rather than inventing numbers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kestrel.api.deps import ApiState, FindingQuery
from kestrel.api.findings import statuses
from kestrel.api.schemas import EntityProfile, EntitySummary, FindingOut, Status, TimelinePoint

BUCKETS = {"minute": "minute", "hour": "hour", "day": "day"}


def _finding_counts(state: ApiState) -> Counter[tuple[str, str]]:
    with state.lock:
        found = state.findings.findings(FindingQuery())
    return Counter((f.entity.type, f.entity.id) for f in found)


def summaries(state: ApiState, limit: int, entity_type: str | None) -> list[EntitySummary]:
    """The busiest entities (by event count), with their finding counts."""
    where = "WHERE entity_id IS NOT NULL" + (" AND entity_type = ?" if entity_type else "")
    sql = (
        "SELECT entity_type, entity_id, count(*) AS n, min(time) AS lo, max(time) AS hi "
        f"FROM events {where} GROUP BY 1, 2 ORDER BY n DESC, 2 LIMIT ?"
    )
    params: list[Any] = [entity_type, limit] if entity_type else [limit]
    with state.lock:
        rows = state.store.query(sql, params).to_pylist()
    counts = _finding_counts(state)
    return [
        EntitySummary(type=r["entity_type"] or "", id=r["entity_id"], events=r["n"],
                      first_seen=r["lo"], last_seen=r["hi"],
                      findings=counts[(r["entity_type"] or "", r["entity_id"])])
        for r in rows
    ]  # fmt: skip


def profile(state: ApiState, etype: str, eid: str) -> EntityProfile | None:
    """One entity's profile; None when neither events nor findings name it."""
    where = "WHERE entity_type = ? AND entity_id = ?"
    with state.lock:
        by_class = _class_counts(state, etype, eid)
        span = state.store.query(f"SELECT min(time) lo, max(time) hi FROM events {where}",
                                 [etype, eid]).to_pylist()[0]  # fmt: skip
        sources = _distinct(state, "source", etype, eid)
        hosts = _distinct(state, "host", etype, eid)
        found = state.findings.findings(FindingQuery(entity=f"{etype}:{eid}"))
    if not by_class and not found:
        return None
    current = statuses(state)
    items = [FindingOut.from_finding(f, current.get(f.finding_id, Status.NEW)) for f in found]
    baselines = state.baselines(etype, eid) if state.baselines else []
    return EntityProfile(
        type=etype, id=eid, events=sum(by_class.values()), first_seen=span["lo"],
        last_seen=span["hi"], findings=len(found), by_class=by_class, sources=sources,
        hosts=hosts, baselines=baselines, finding_items=items,
    )  # fmt: skip


def _class_counts(state: ApiState, etype: str, eid: str) -> dict[str, int]:
    sql = (
        'SELECT "class" AS c, count(*) AS n FROM events '
        "WHERE entity_type = ? AND entity_id = ? GROUP BY 1 ORDER BY 1"
    )
    rows = state.store.query(sql, [etype, eid]).to_pylist()
    return {str(r["c"]): int(r["n"]) for r in rows}


def _distinct(state: ApiState, column: str, etype: str, eid: str) -> list[str]:
    sql = (
        f'SELECT DISTINCT "{column}" AS v FROM events WHERE entity_type = ? AND entity_id = ? '
        f'AND "{column}" IS NOT NULL ORDER BY 1 LIMIT 50'
    )
    return [str(r["v"]) for r in state.store.query(sql, [etype, eid]).to_pylist()]


def timeline(state: ApiState, etype: str, eid: str, bucket: str) -> list[TimelinePoint]:
    """Event counts per time bucket and class for one entity."""
    unit = BUCKETS[bucket]
    sql = (
        f"SELECT date_trunc('{unit}', time) AS b, \"class\" AS c, count(*) AS n FROM events "
        "WHERE entity_type = ? AND entity_id = ? GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 5000"
    )
    with state.lock:
        rows = state.store.query(sql, [etype, eid]).to_pylist()
    return [TimelinePoint(bucket=r["b"], event_class=r["c"], events=r["n"]) for r in rows]
