"""The threat-intelligence detector: a finding per entity and window wherever enrichment
found known-bad evidence, the indicator and its feed in the signals; quiet without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kestrel.detect import DETECTORS
from kestrel.detect.intel import ThreatIntelDetector
from kestrel.events import Batch, make_batch
from kestrel.findings import Severity

T0 = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)


def _batch(**cols: list[object]) -> Batch:
    n = len(cols["event_id"])
    times = [T0 + timedelta(minutes=i) for i in range(n)]
    return make_batch({"time": times, "class": ["network"] * n, **cols}, n)


def test_ioc_hit_becomes_a_finding_with_the_indicator() -> None:
    batch = _batch(event_id=["a", "b", "c"], agent_id=["ag1", "ag1", "ag2"],
                   host=["web-01", "web-01", "db-01"],
                   ioc_indicator=["203.0.113.66", None, None], ioc_type=["ip", None, None],
                   ioc_source=["feed.csv", None, None], ioc_field=["dst_ip", None, None],
                   threat_score=[45.0, 0.0, 0.0])  # fmt: skip
    found = ThreatIntelDetector().detect(batch)
    assert len(found) == 1
    f = found[0]
    assert (f.entity.type, f.entity.id, f.severity) == ("host", "ag1", Severity.MEDIUM)
    ioc = [s for s in f.signals if s.name == "ioc:ip"]
    assert ioc and ioc[0].value == "203.0.113.66" and "feed.csv" in ioc[0].detail
    assert f.evidence == ("a",) and "web-01" in f.title


def test_weak_or_absent_enrichment_is_quiet() -> None:
    weak = _batch(event_id=["a"], agent_id=["ag1"], ioc_indicator=["x.exe"],
                  ioc_type=["filename"], threat_score=[25.0])  # fmt: skip
    assert ThreatIntelDetector().detect(weak) == []
    bare = _batch(event_id=["a"], agent_id=["ag1"])
    assert ThreatIntelDetector().detect(bare) == []


def test_yara_and_reputation_signals_and_severity() -> None:
    batch = _batch(event_id=["a", "b"], host=["h", "h"], yara_rules=["ns:R1,ns:R2", None],
                   rep_malicious=[None, 12], threat_score=[90.0, 50.0])  # fmt: skip
    (f,) = ThreatIntelDetector().detect(batch)
    names = {s.name for s in f.signals}
    assert {"yara:ns:R1", "yara:ns:R2", "reputation.malicious"} <= names
    assert f.severity == Severity.CRITICAL and f.entity.id == "h"


def test_registered() -> None:
    assert DETECTORS["intel"] is ThreatIntelDetector
