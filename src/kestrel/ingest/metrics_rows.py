"""What the three metric parsers share: rows in, long-form metric events out.

A parser adds one *row* per source record (a Prometheus sample, an nvidia-smi CSV line, a
JSON object) with the row's context (time, host, GPU, job, cloud) and the row's metrics.
`to_chunk` then turns the run into events in one pass of column work: times are parsed once
per row, the per-row columns are repeated for each of the row's metrics with one Arrow
``take``, and only the event ids are computed per event.

Identity: ``raw`` is the canonical JSON of the row, and ``event_id`` hashes ``raw + "\\0" +
metric_name``, so one row gives one id per metric and the same row read twice gives the
same ids. Entity: ``job_id`` when the row has one, else ``host/gpuN`` (host lower-cased),
else the host alone; ``unknown`` stands in for a missing host.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from kestrel import config
from kestrel.events import event_id, make_batch, parse_times
from kestrel.ingest.base import Chunk, Rejected, Source, SourcePosition
from kestrel.ingest.framing import iter_lines
from kestrel.ingest.times import epoch_to_iso


class Context(NamedTuple):
    """What a row says about where its metrics were measured (the columns it fills)."""

    time: str  # ISO-8601; a parser rejects a row that has no time before it gets here
    host: str | None = None
    gpu_index: int | None = None
    instance_type: str | None = None
    job_id: str | None = None
    job_name: str | None = None
    cloud_provider: str | None = None
    cloud_account: str | None = None
    cloud_region: str | None = None


class Metric(NamedTuple):
    """One measurement of a row: Kestrel's name, the value, the unit, the source's name."""

    name: str
    value: float
    unit: str | None
    family: str


_CONTEXT_TYPES: dict[str, pa.DataType] = {
    name: pa.int64() if name == "gpu_index" else pa.string() for name in Context._fields
}
_CONSTANTS = {"class": "metric", "activity": "sample", "source": "metrics",
              "entity_type": "workload"}  # fmt: skip


@dataclass(slots=True)
class MetricRun:
    """The rows of one piece of a source, their metrics, and the records set aside."""

    path: str
    contexts: list[Context] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # per metric: the index of its row
    metrics: list[Metric] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0

    @property
    def size(self) -> int:
        """Rows kept and set aside so far (a parser starts a new run past `BATCH_ROWS`)."""
        return len(self.contexts) + len(self.rejected)

    def add(self, line: int | None, ctx: Context, raw: bytes, metrics: Iterable[Metric]) -> None:
        """Keep one row: its context, its canonical JSON and its metrics."""
        index = len(self.contexts)
        self.contexts.append(ctx)
        self.raws.append(raw)
        self.lines.append(line)
        for metric in metrics:
            self.rows.append(index)
            self.metrics.append(metric)

    def reject(self, line: int | None, reason: str, raw: bytes | str = b"") -> None:
        """Set one row aside with its line number and the reason."""
        self.rejected.append(Rejected.of(SourcePosition(self.path, line=line), reason, raw))

    def reject_long_line(self, line: int) -> None:
        """Count and set aside a line `text_lines` skipped for its length."""
        self.read += 1
        self.reject(line, f"line longer than {config.MAX_RECORD_BYTES} bytes; skipped")


def to_chunk(run: MetricRun) -> Chunk:
    """The run's metric events as a batch, with rows whose time does not parse rejected."""
    times, bad = parse_times([ctx.time for ctx in run.contexts])
    for i in bad:
        reason = f"unparseable time {run.contexts[i].time!r}"
        run.reject(run.lines[i], reason, run.raws[i])
    take = pa.array(run.rows, pa.int64())
    columns = {name: values.take(take) for name, values in _row_columns(run, times).items()}
    columns.update(_metric_columns(run))
    if bad:
        keep = pc.is_valid(columns["time"])
        columns = {name: values.filter(keep) for name, values in columns.items()}
    n = len(columns["time"])
    columns.update({name: pa.array([value] * n, pa.string()) for name, value in _CONSTANTS.items()})
    return Chunk(make_batch(columns, n), run.rejected, run.read)


def _row_columns(run: MetricRun, times: pa.Array) -> dict[str, pa.Array]:
    """One value per row: the context columns, the entity, the raw record."""
    cols = {
        name: pa.array([ctx[i] for ctx in run.contexts], _CONTEXT_TYPES[name])
        for i, name in enumerate(Context._fields)
    }
    cols["time"] = times
    cols["entity_id"] = pa.array([entity_of(ctx) for ctx in run.contexts], pa.string())
    cols["raw"] = pa.array([raw.decode("utf-8") for raw in run.raws], pa.string())
    return cols


def _metric_columns(run: MetricRun) -> dict[str, pa.Array]:
    """One value per metric event."""
    ids = [
        event_id("metrics", run.raws[row] + b"\0" + m.name.encode())
        for row, m in zip(run.rows, run.metrics, strict=True)
    ]
    return {
        "event_id": pa.array(ids, pa.string()),
        "metric_name": pa.array([m.name for m in run.metrics], pa.string()),
        "metric_value": pa.array([m.value for m in run.metrics], pa.float64()),
        "metric_unit": pa.array([m.unit for m in run.metrics], pa.string()),
        "source_event": pa.array([m.family for m in run.metrics], pa.string()),
        "bytes_in": _named_value(run.metrics, "bytes_in"),
        "bytes_out": _named_value(run.metrics, "bytes_out"),
    }


def _named_value(metrics: list[Metric], name: str) -> pa.Array:
    """The schema's bytes_in / bytes_out columns, filled on the events of that metric (when
    the value fits the column)."""
    return pa.array(
        [int(m.value) if m.name == name and abs(m.value) < _INT64 else None for m in metrics],
        pa.int64(),
    )


_INT64 = 2**63
MAX_GPU_INDEX = 1_000_000


def gpu_index(text: str) -> int | None:
    """A GPU index written as text, or None when it is not a (plausible) index.

    >>> gpu_index("3"), gpu_index("x"), gpu_index("99999999999999999999")
    (3, None, None)
    """
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_GPU_INDEX:
        return None
    return int(text)


def entity_of(ctx: Context) -> str:
    """The workload a row belongs to: its job, else its GPU on its host, else its host.

    >>> entity_of(Context("", host="Node-1", gpu_index=0))
    'node-1/gpu0'
    >>> entity_of(Context("", host="node-1", gpu_index=0, job_id="ft-7f3a"))
    'ft-7f3a'
    """
    if ctx.job_id:
        return ctx.job_id
    host = (ctx.host or "unknown").lower()
    return host if ctx.gpu_index is None else f"{host}/gpu{ctx.gpu_index}"


def text_lines(source: Source) -> Iterator[tuple[int, str | None]]:
    """``(line_number, text)`` of a text source, stripped; None for a line longer than
    `config.MAX_RECORD_BYTES` (skipped without being held, like JSON Lines)."""
    with source.open() as stream:
        for line_no, line in iter_lines(stream, config.MAX_RECORD_BYTES):
            if line is None:
                yield line_no, None
            else:
                yield line_no, line.decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def directive(text: str) -> tuple[str, str] | None:
    """A ``# kestrel-<key>: <value>`` comment as (key, value); None for any other line.

    >>> directive("# kestrel-scrape-time: 2024-05-01T12:00:00Z")
    ('scrape-time', '2024-05-01T12:00:00Z')
    """
    if not text.startswith("# kestrel-"):
        return None
    key, sep, value = text[len("# kestrel-") :].partition(":")
    return (key.strip().lower(), value.strip()) if sep else None


def time_text(value: str) -> str:
    """A time written as text: epoch digits (seconds or milliseconds) become ISO; anything
    else is passed on as ISO-8601 for `parse_times` to accept or reject."""
    try:
        number = float(value)
    except ValueError:
        return value
    return epoch_to_iso(number)
