"""What the overview page shows, computed from the findings, the store and the metrics:
findings by severity over time, top entities, the technique heat map, pipeline health."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kestrel.api.deps import ApiState, FindingQuery
from kestrel.api.findings import statuses
from kestrel.api.schemas import Status
from kestrel.findings import Finding, Severity
from kestrel.findings.attack import name_of
from kestrel.store.findings import StateTable

SEVERITY_NAMES = [str(s) for s in Severity]


def overview_data(state: ApiState) -> dict[str, Any]:
    """The overview page's context."""
    with state.lock:
        found = state.findings.findings(FindingQuery())
        stats = state.store.stats()
        cursor = StateTable(state.store).cursor()
        agents = len(state.mgmt.agents())
    current = statuses(state)
    open_ = [f for f in found if current.get(f.finding_id, Status.NEW) is not Status.RESOLVED]
    return {
        "by_severity": Counter(str(f.severity) for f in open_),
        "severities": SEVERITY_NAMES,
        "total_findings": len(found),
        "timeline": severity_timeline(found),
        "top_entities": Counter(f"{f.entity.type}:{f.entity.id}" for f in found).most_common(10),
        "heatmap": heatmap(found),
        "health": {
            "events": stats.total,
            "rejected": stats.rejected,
            "by_source": stats.by_source,
            "detected_up_to": cursor,
            "agents": agents,
            "intake": _intake_counts(state),
        },
    }


def severity_timeline(found: list[Finding]) -> dict[str, Any]:
    """Findings per day (per hour when they span under two days) and severity."""
    if not found:
        return {"labels": [], "series": {}}
    span = max(f.first_seen for f in found) - min(f.first_seen for f in found)
    fmt = "%Y-%m-%d %H:00" if span.days < 2 else "%Y-%m-%d"
    labels = sorted({f.first_seen.strftime(fmt) for f in found})
    counts = Counter((str(f.severity), f.first_seen.strftime(fmt)) for f in found)
    series = {s: [counts[(s, label)] for label in labels] for s in SEVERITY_NAMES}
    return {"labels": labels, "series": {s: v for s, v in series.items() if any(v)}}


def heatmap(found: list[Finding]) -> list[dict[str, Any]]:
    """One tile per ATT&CK / ATLAS technique: id, name, findings, and a 0-4 heat level."""
    counts = Counter(t for f in found for t in f.techniques)
    top = max(counts.values(), default=1)
    return [
        {"id": t, "name": name_of(t), "count": n, "level": min(4, 1 + (4 * n) // (top + 1))}
        for t, n in sorted(counts.items())
    ]


def _intake_counts(state: ApiState) -> dict[str, float]:
    """Events received, stored and rejected through the API since this process started."""
    out: dict[str, float] = {}
    for metric in state.metrics.registry.collect():
        if metric.name in ("kestrel_events_received", "kestrel_events_stored",
                           "kestrel_events_rejected"):  # fmt: skip
            total = sum(s.value for s in metric.samples if s.name.endswith("_total"))
            out[metric.name.removeprefix("kestrel_events_")] = total
    return out
