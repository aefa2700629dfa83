"""Finding → Sigma: a rule that finds the same thing again, for another SIEM to run.

A windowed finding (``window_seconds`` set) becomes two YAML documents: a base rule that
selects the entity's events, and a Sigma *correlation* rule over it (``event_count`` /
``value_count`` / ``value_avg``, grouped by the entity, with the finding's window as
``timespan``) whose condition is the signal that fired. A finding without a window becomes
the base rule alone. The output parses with pySigma (a test checks it); the ids are derived
from the finding id, so exporting twice gives the same text.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from kestrel.findings.model import Finding, Signal

_NS = uuid.UUID("6c1b7c1e-3f0a-4d59-9a53-6b6e1c0f2a11")
_DENIED = ["AccessDenied", "Unauthorized", "Forbidden"]
_LEVEL = {"info": "informational", "low": "low", "medium": "medium", "high": "high",
          "critical": "critical"}  # fmt: skip


def to_sigma(f: Finding) -> str:
    """The finding as Sigma YAML (one or two documents)."""
    signal = _main_signal(f)
    base = _base_rule(f, signal)
    docs = [base]
    if f.window_seconds:
        docs.append(_correlation(f, signal, base["name"]))
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _main_signal(f: Finding) -> Signal:
    """The signal the correlation expresses: the first one Sigma can count."""
    for s in f.signals:
        if s.name in _COUNTABLE or s.name.startswith("gpu_util."):
            return s
    return f.signals[0]


def _entity_field(f: Finding) -> str:
    return "userIdentity.arn" if f.entity.type in ("principal", "user", "role") else "entity_id"


def _logsource(f: Finding) -> dict[str, str]:
    if _entity_field(f) == "userIdentity.arn":
        return {"product": "aws", "service": "cloudtrail"}
    return {"product": "kestrel", "service": "metrics"}


def _base_rule(f: Finding, signal: Signal) -> dict[str, Any]:
    selection: dict[str, Any] = {_entity_field(f): f.entity.id}
    if signal.name == "api.error_rate":
        selection["errorCode|contains"] = _DENIED
    if signal.name.startswith(("gpu_util.", "power_watts.")):
        selection["metric_name"] = signal.name.split(".")[0]
    name = f"kestrel_{f.detector}_{f.finding_id}"
    return {
        "title": f.title or f"{f.detector} finding for {f.entity}",
        "id": str(uuid.uuid5(_NS, name)),
        "name": name,
        "status": "experimental",
        "description": f"Exported from Kestrel finding {f.finding_id} ({f.detector}).",
        "tags": [_tag(t) for t in f.techniques],
        "logsource": _logsource(f),
        "detection": {"selection": selection, "condition": "selection"},
        "level": _LEVEL[str(f.severity)],
    }


def _tag(technique: str) -> str:
    return "attack." + technique.lower() if technique.startswith("T") else technique.lower()


def _correlation(f: Finding, signal: Signal, base: str) -> dict[str, Any]:
    kind, field, condition = _COUNTABLE.get(signal.name, _default)(f, signal)
    body: dict[str, Any] = {"type": kind, "rules": [base], "group-by": [_entity_field(f)],
                            "timespan": f"{f.window_seconds}s", "condition": condition}  # fmt: skip
    if field:
        body["condition"] = {"field": field, **condition}
    return {
        "title": f"{f.title} (correlation)",
        "id": str(uuid.uuid5(_NS, f"{base}:correlation")),
        "status": "experimental",
        "correlation": body,
        "level": _LEVEL[str(f.severity)],
    }


Correlation = tuple[str, str | None, dict[str, float]]


def _default(f: Finding, signal: Signal) -> Correlation:
    """As many of the entity's events in the window as the finding's evidence holds."""
    return "event_count", None, {"gte": max(1, len(f.evidence))}


def _regions(f: Finding, s: Signal) -> Correlation:
    return "value_count", "awsRegion", {"gt": float(s.threshold or 5)}


def _burst(f: Finding, s: Signal) -> Correlation:
    return "event_count", None, {"gte": float(s.threshold or len(f.evidence))}


def _denied(f: Finding, s: Signal) -> Correlation:
    denied = round(float(s.value) * len(f.evidence)) if isinstance(s.value, float) else 1
    return "event_count", None, {"gte": max(1, denied)}


def _util(f: Finding, s: Signal) -> Correlation:
    return "value_avg", "metric_value", {"gte": float(s.threshold or 90)}


_COUNTABLE = {"api.regions": _regions, "api.burst": _burst, "api.error_rate": _denied,
              "gpu_util.sustained": _util}  # fmt: skip
