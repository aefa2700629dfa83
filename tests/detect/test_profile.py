"""Entity profiles merge exactly: one batch or many slices of it give the same profile."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from kestrel.detect.profile import EntityProfiler, describe
from kestrel.events import SCHEMA


def _batch(rows: list[dict[str, object]]) -> pa.Table:
    from datetime import UTC, datetime

    base = dict.fromkeys(SCHEMA.names)
    full = [{**base, "event_id": str(i), **r} for i, r in enumerate(rows)]
    for r in full:
        r["time"] = datetime(2024, 5, 1, int(r.pop("hour")), tzinfo=UTC)  # type: ignore[arg-type]
    return pa.Table.from_pylist(full, schema=SCHEMA)


CALL = {"class": "api_activity", "entity_type": "principal", "entity_id": "alice",
        "cloud_provider": "aws", "cloud_service": "ec2"}  # fmt: skip
GPU = {"class": "metric", "entity_type": "workload", "entity_id": "gpu-1", "source": "metrics",
       "instance_type": "p4d.24xlarge", "cloud_region": "us-east-1"}  # fmt: skip
ROWS: list[dict[str, object]] = [
    {**CALL, "hour": 9, "cloud_operation": "DescribeInstances", "cloud_region": "us-east-1"},
    {**CALL, "hour": 10, "cloud_operation": "RunInstances", "cloud_region": "eu-west-1",
     "cloud_error_code": "AccessDenied"},
    {**CALL, "hour": 11, "cloud_operation": "DescribeInstances", "cloud_region": "us-east-1"},
    {**GPU, "hour": 1, "metric_name": "gpu_util", "metric_value": 90.0},
    {**GPU, "hour": 2, "metric_name": "gpu_util", "metric_value": 70.0},
    {**GPU, "hour": 2, "metric_name": "power_watts", "metric_value": 300.0},
]  # fmt: skip


def _profiles(batches: list[pa.Table]) -> dict[str, dict[str, object]]:
    prof = EntityProfiler()
    for b in batches:
        prof.learn(b)
    ops = prof.operations.to_dicts()
    return {
        r["entity_id"]: describe(r, [o for o in ops if o["entity_id"] == r["entity_id"]])
        for r in prof.profiles.to_dicts()
    }


def test_profile_fields() -> None:
    p = _profiles([_batch(ROWS)])
    alice, gpu = p["alice"], p["gpu-1"]
    assert alice["regions"] == ["eu-west-1", "us-east-1"] and alice["api_calls"] == 3
    assert alice["error_rate"] == round(1 / 3, 4) and alice["api_calls_per_hour"] == 1.5
    assert alice["active_hours"][9:12] == [1, 1, 1]  # type: ignore[index]
    ops = alice["services"]["ec2"]["operations"]  # type: ignore[index]
    assert ops["DescribeInstances"]["calls"] == 2
    assert ops["RunInstances"]["first_seen"].startswith("2024-05-01T10")
    assert gpu["gpu_util_avg"] == 80.0 and gpu["power_watts_avg"] == 300.0
    assert gpu["instance_types"] == ["p4d.24xlarge"] and gpu["provider"] == "metrics"


def test_slices_merge_exactly_and_state_round_trips() -> None:
    whole = _profiles([_batch(ROWS)])
    table = _batch(ROWS)
    assert _profiles([table.slice(i, 1) for i in range(table.num_rows)]) == whole
    prof = EntityProfiler()
    prof.learn(table.slice(0, 3))
    again = EntityProfiler()
    again.load_state(prof.state())
    again.learn(table.slice(3))
    assert again.profiles.sort("entity_id").equals(_all(table).sort("entity_id"))


def _all(table: pa.Table) -> pl.DataFrame:
    prof = EntityProfiler()
    prof.learn(table)
    return prof.profiles


def test_pending_batches_fold_on_read_and_load_state_replaces_them() -> None:
    table = _batch(ROWS)
    prof = EntityProfiler(flush_rows=10**9)  # nothing folded until read
    prof.learn(table.slice(0, 3))
    prof.learn(table.slice(3))
    assert prof.profiles.sort("entity_id").equals(_all(table).sort("entity_id"))
    other = EntityProfiler()
    other.learn(table.slice(3))  # the GPU rows only
    prof.learn(table.slice(0, 3))  # pending again, then replaced by what is loaded
    prof.load_state(other.state())
    assert prof.profiles["entity_id"].to_list() == ["gpu-1"]
    assert prof.operations.is_empty()
