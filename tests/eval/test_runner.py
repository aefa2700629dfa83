"""The evaluation's store-free runner finds what the embedded runner finds in a fresh store:
same events, same order, same hourly slices, same findings (so the figures do not depend on
which of the two ran)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kestrel.eval.cloud import _ingest, _read, detect, evaluate, slices
from kestrel.eval.datasets import Group, Record, generated, load
from kestrel.findings import Finding
from kestrel.pipeline import default_detectors, run_detection
from kestrel.store import DuckDBStore


def _key(findings: list[Finding]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return sorted((f.detector, f.entity.id, tuple(s.name for s in f.signals), f.evidence)
                  for f in findings)  # fmt: skip


def _both(records: list[Record]) -> tuple[list[Finding], list[Finding]]:
    batch, _ = _read(records)
    direct = detect(batch, default_detectors(("sigma",)))
    store = DuckDBStore(":memory:")
    try:
        _ingest(store, records)
        stored = run_detection(store, default_detectors(("sigma",)), persist=False).findings
    finally:
        store.close()
    return direct, stored


def test_same_findings_as_run_detection_on_a_generated_day() -> None:
    records = generated("all", hours=6, seed=5).records
    direct, stored = _both(records)
    assert len(direct) > 0
    assert _key(direct) == _key(stored)


def _call(i: int, when: datetime, event: str = "DescribeInstances") -> Record:
    rec = {"eventName": event, "eventSource": "ec2.amazonaws.com",
           "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventID": f"e{i}",
           "recipientAccountId": "111122223333",
           "userIdentity": {"type": "IAMUser", "userName": "bob",
                            "arn": "arn:aws:iam::111122223333:user/bob"}}  # fmt: skip
    return Record(json.dumps(rec).encode(), False, "x")


def test_slices_start_at_the_first_event_and_skip_empty_hours() -> None:
    t0 = datetime(2024, 5, 1, 10, 40, tzinfo=UTC)
    offsets = [0, 10, 59, 60, 61, 300, 301]  # minutes after t0
    records = [_call(i, t0 + timedelta(minutes=m)) for i, m in enumerate(offsets)]
    records.append(_call(0, t0))  # a duplicate record: one event, as in a store
    batch, ids = _read(records)
    assert batch.num_rows == len(offsets) and ids[0] == ids[-1]
    sizes = [s.num_rows for s in slices(batch, timedelta(hours=1))]
    assert sizes == [3, 2, 2]  # [10:40, 11:40), [11:40, 12:40), [15:40, 16:40)


def test_groups_share_no_history() -> None:
    """The same StopLogging in two groups is new in each (fresh detectors per group)."""
    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    groups = [Group(f"g{i}", [_call(1, t0, "StopLogging")]) for i in range(2)]
    for g in groups:
        g.records[0].positive = True
    result = evaluate("x", groups, lambda: default_detectors(("sigma",))).as_dict()
    assert result["event"]["tp"] == 2


@pytest.mark.datasets
def test_same_findings_as_run_detection_on_stratus(datasets: Path) -> None:
    for group in load("stratus", datasets)[:6]:
        direct, stored = _both(group.records)
        assert _key(direct) == _key(stored), group.name
