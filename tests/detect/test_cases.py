"""Every detector case under ``cases/`` (capa-style YAML, see cases/README.md): the records
go through the real reader and the embedded runner into the named detector, and the
findings must match ``expect`` — including the negative cases, which expect none."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from kestrel.detect import DETECTORS
from kestrel.findings import Finding
from kestrel.findings.correlate import merge_findings
from kestrel.ingest import READERS
from kestrel.ingest.base import Source
from kestrel.pipeline import run_detection
from kestrel.store import DuckDBStore

CASES = sorted(Path(__file__).with_name("cases").rglob("*.yml"))
_TIME = {"cloudtrail": "eventTime", "metrics": "timestamp"}
_KEYS = {"description", "detector", "format", "params", "defaults", "events", "expect"}


def _expand(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's records: ``repeat`` entries unrolled ``every`` seconds from ``start``,
    ``defaults`` merged under each record, event ids numbered."""
    out: list[dict[str, Any]] = []
    tkey = _TIME[case["format"]]
    for entry in case["events"]:
        if "repeat" not in entry:
            out.append(entry)
            continue
        start = datetime.fromisoformat(entry["start"].replace("Z", "+00:00"))
        for i in range(entry["repeat"]):
            at = start + timedelta(seconds=i * entry["every"])
            out.append({**entry["record"], tkey: at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    defaults = case.get("defaults", {})
    return [{**defaults, **r, **_ids(case, i)} for i, r in enumerate(out)]


def _ids(case: dict[str, Any], i: int) -> dict[str, str]:
    return {"eventID": f"case-{i:06d}"} if case["format"] == "cloudtrail" else {}


def _batch(case: dict[str, Any]) -> pa.Table:
    data = b"\n".join(json.dumps(r).encode() for r in _expand(case))
    src = Source(case["format"], lambda: io.BytesIO(data), len(data))
    return pa.concat_tables([c.batch for c in READERS[case["format"]]().read(src)])


def _findings(case: dict[str, Any]) -> list[Finding]:
    store = DuckDBStore(":memory:")
    try:
        store.append(_batch(case))
        det = DETECTORS[case["detector"]](**case.get("params", {}))
        found = run_detection(store, {case["detector"]: det}, persist=False, profiles=False)
    finally:
        store.close()
    return merge_findings(found.findings, timedelta(minutes=5))


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= _KEYS and case.get("description"), f"{path}: unknown keys or no description"
    found = _findings(case)
    expect = case["expect"]
    shown = [(f.title, str(f.severity)) for f in found]
    assert len(found) == expect["findings"], shown
    signals = {s.name for f in found for s in f.signals}
    assert set(expect.get("signals", [])) <= signals, shown
    assert not set(expect.get("not_signals", [])) & signals, shown
    if "severity" in expect:
        assert str(max(f.severity for f in found)) == expect["severity"], shown
    assert set(expect.get("techniques", [])) <= {t for f in found for t in f.techniques}


def test_every_detector_has_a_negative_case() -> None:
    cases = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in CASES]
    negative = {c["detector"] for c in cases if c["expect"]["findings"] == 0}
    positive = {c["detector"] for c in cases if c["expect"]["findings"] > 0}
    assert positive == negative == {"new_behaviour", "api_abuse", "gpu_hijack", "rogue_training",
                                    "instance_credentials"}  # fmt: skip
