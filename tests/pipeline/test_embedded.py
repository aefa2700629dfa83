"""The embedded runner: findings stored once, state and cursor checkpointed."""

from __future__ import annotations

from kestrel.eval.cloud import _ingest
from kestrel.eval.datasets import generated
from kestrel.pipeline import default_detectors, load_findings, run_detection


def test_run_twice_keeps_findings_once(store) -> None:
    _ingest(store, generated("all", 24, 3).records)
    first = run_detection(store, default_detectors(("sigma",)))
    stored = load_findings(store)
    assert first.stored == len(stored) > 0
    again = run_detection(store, default_detectors(("sigma",)))
    assert again.events == 0  # the cursor: nothing new to read
    assert len(load_findings(store)) == len(stored)
    detectors = {s.entity.id for s in stored}
    assert any("dev1" in d for d in detectors)
