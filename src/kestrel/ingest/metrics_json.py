"""The JSON form of GPU / workload metrics (JSON Lines, or a JSON array) into metric rows.

A row is an object with context fields (``timestamp`` *required*: ISO-8601 or epoch
seconds / milliseconds; ``host``, ``gpu_index``, ``instance_type``, ``instance_id``,
``job_id``, ``job_name``, ``provider``, ``account``, ``region``) and metrics:

* wide: every other field whose value is a number is one metric of that name (``gpu_util``,
  ``mem_util``, ``power_watts``, ``duration_s``, ``bytes_in``, ``bytes_out`` ... with units
  from `kestrel.ingest.mappings.metrics.JSON_UNITS`); ``null`` means not measured; other
  strings (a label, a GPU model) stay in ``raw`` only;
* long: ``metric_name`` + ``metric_value`` (+ ``metric_unit``) is exactly one metric.

A context field of the wrong type, a known metric that is not a number, or a row with no
metric at all is rejected with the field named.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec

from kestrel.ingest.base import Source
from kestrel.ingest.framing import RawRecords, frame_json
from kestrel.ingest.mappings.metrics import JSON_CONTEXT, JSON_UNITS
from kestrel.ingest.metrics_rows import MAX_GPU_INDEX, Context, Metric, MetricRun
from kestrel.ingest.times import to_iso


class _Row(msgspec.Struct):
    """The typed context of a row (decoded from the row's object; other fields ignored)."""

    timestamp: str | int | float
    host: str | None = None
    gpu_index: Annotated[int, msgspec.Meta(ge=0, le=MAX_GPU_INDEX)] | None = None
    instance_type: str | None = None
    instance_id: str | None = None
    job_id: str | None = None
    job_name: str | None = None
    provider: str | None = None
    account: str | None = None
    region: str | None = None
    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None


def json_runs(source: Source, batch_rows: int) -> Iterator[MetricRun]:
    """Rows of a JSON metrics source, ``batch_rows`` at a time."""
    for records in frame_json(source, batch_rows):
        run = MetricRun(source.name, rejected=list(records.rejected), read=records.count)
        for i, raw in enumerate(records.raws):
            _record(run, records, i, raw)
        yield run


def _record(run: MetricRun, records: RawRecords, i: int, raw: bytes) -> None:
    """Add framed record ``i`` to ``run``, or reject it with the reason."""
    line = records.lines[i]
    try:
        fields = msgspec.json.decode(raw, type=dict[str, Any])
        row = msgspec.convert(fields, _Row)
    except msgspec.DecodeError as exc:  # ValidationError included: numbers out of range
        run.reject(line, f"not a metrics row: {exc}", raw)
        return
    metrics = _long(row) if row.metric_name is not None else _wide(fields)
    if isinstance(metrics, str):
        run.reject(line, metrics, raw)
        return
    ctx = Context(
        to_iso(row.timestamp) or "", row.host, row.gpu_index, row.instance_type, row.job_id,
        row.job_name, row.provider, row.account, row.region,
    )  # fmt: skip
    run.add(line, ctx, raw, metrics)


def _long(row: _Row) -> list[Metric] | str:
    """The one metric of a long-form row."""
    name, value = row.metric_name or "", row.metric_value
    if value is None:
        return f"metric {name!r} has no metric_value"
    unit = row.metric_unit or JSON_UNITS.get(name)
    return [Metric(name, value, unit, name)] if math.isfinite(value) else []


def _wide(fields: dict[str, Any]) -> list[Metric] | str:
    """One metric per numeric field that is not context, or the reason the row is rejected."""
    metrics: list[Metric] = []
    seen = False
    for name, value in fields.items():
        if name in JSON_CONTEXT:
            continue
        if _is_number(value):
            seen = True
            number = float(value) if abs(value) < _FLOAT_MAX else math.inf
            if math.isfinite(number):
                metrics.append(Metric(name, number, JSON_UNITS.get(name), name))
        elif name in JSON_UNITS:
            if value is not None:
                return f"{name}: expected a number, got {type(value).__name__} {value!r}"
            seen = True
    return metrics if seen else "no metric in the row (no numeric field besides its context)"


_FLOAT_MAX = 10**308


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
