"""Finding → JSON, OCSF Detection Finding (2004), ATT&CK Navigator layer.

Technique names come from `kestrel.findings.attack` (MITRE's own tables when present).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from kestrel.findings.attack import name_of
from kestrel.findings.model import Finding

_OCSF_SEVERITY = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}  # info..critical → OCSF severity_id


def to_json(f: Finding) -> dict[str, Any]:
    """Every field of a finding, techniques with their names, evidence with source ids."""
    sources = f.source_ids or ("",) * len(f.evidence)
    return {
        "finding_id": f.finding_id, "detector": f.detector,
        "entity": {"type": f.entity.type, "id": f.entity.id}, "severity": str(f.severity),
        "title": f.title, "first_seen": f.first_seen.isoformat(),
        "last_seen": f.last_seen.isoformat(), "window_seconds": f.window_seconds,
        "techniques": [{"id": t, "name": name_of(t)} for t in f.techniques],
        "signals": [{"name": s.name, "value": s.value, "threshold": s.threshold,
                     "detail": s.detail, "kind": s.kind} for s in f.signals],
        "evidence": [{"event_id": e, "source_id": s}
                     for e, s in zip(f.evidence, sources, strict=True)],
        "tags": list(f.tags),
    }  # fmt: skip


def to_ocsf(f: Finding) -> dict[str, Any]:
    """An OCSF 1.x Detection Finding (class_uid 2004, activity Create)."""
    attacks = [{"technique": {"uid": t, "name": name_of(t)}} for t in f.techniques
               if not t.startswith("AML.")]  # fmt: skip
    return {
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401,
        "severity_id": _OCSF_SEVERITY[int(f.severity)], "severity": str(f.severity).title(),
        "time": int(f.last_seen.timestamp() * 1000),
        "metadata": {"version": "1.3.0", "product": {"name": "Kestrel", "vendor_name": "Kestrel"}},
        "finding_info": {"uid": f.finding_id, "title": f.title, "analytic": {"name": f.detector},
                         "first_seen_time": int(f.first_seen.timestamp() * 1000),
                         "last_seen_time": int(f.last_seen.timestamp() * 1000),
                         "attacks": attacks,
                         "related_events": [{"uid": e} for e in f.evidence]},
        "resources": [{"type": f.entity.type, "uid": f.entity.id}],
        "unmapped": {"signals": [s.name for s in f.signals],
                     "atlas": [t for t in f.techniques if t.startswith("AML.")]},
    }  # fmt: skip


def navigator_layer(findings: Iterable[Finding], name: str = "Kestrel findings") -> dict[str, Any]:
    """An ATT&CK Navigator layer scoring each ATT&CK technique by how many findings cite it."""
    counts = Counter(t for f in findings for t in f.techniques if not t.startswith("AML."))
    return {
        "name": name, "domain": "enterprise-attack",
        "versions": {"attack": "18", "navigator": "5.1.0", "layer": "4.5"},
        "techniques": [{"techniqueID": t, "score": n, "comment": name_of(t)}
                       for t, n in sorted(counts.items())],
        "gradient": {"colors": ["#ffe766", "#ff6666"], "minValue": 0,
                     "maxValue": max(counts.values(), default=1)},
    }  # fmt: skip
