"""Enrichment in the flow: the embedded runner enriches each slice before its detectors, and
ingest can enrich before storing (the columns are then kept in the store)."""

from __future__ import annotations

from pathlib import Path

from kestrel.detect.intel import ThreatIntelDetector
from kestrel.enrich.policy import build_stage
from kestrel.ingest import ingest_paths
from kestrel.pipeline import run_detection

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "samples" / "agent"
FEED = ROOT / "policies" / "feeds" / "samples.csv"


def test_runner_enriches_before_detecting(store) -> None:
    ingest_paths([AGENT], store)
    stage = build_stage({"ioc": {"feeds": [str(FEED)]}})
    report = run_detection(store, {"intel": ThreatIntelDetector()}, enrich=stage)
    assert report.by_detector == {"intel": 1}
    (finding,) = report.findings
    values = {s.value for s in finding.signals if s.name == "ioc:ip"}
    assert values == {"203.0.113.66", "198.51.100.23"}


def test_runner_without_enrichment_finds_nothing_to_report(store) -> None:
    ingest_paths([AGENT], store)
    assert run_detection(store, {"intel": ThreatIntelDetector()}).findings == []


def test_ingest_can_enrich_before_storing(store) -> None:
    stage = build_stage({"ioc": {"feeds": [str(FEED)]}})
    ingest_paths([AGENT], store, transform=stage)
    hits = store.query("SELECT DISTINCT ioc_indicator FROM events WHERE ioc_indicator IS NOT NULL")
    assert set(hits.column("ioc_indicator").to_pylist()) == {"203.0.113.66", "198.51.100.23"}
