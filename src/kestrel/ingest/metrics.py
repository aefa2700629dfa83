"""GPU / workload metrics in long form: one ``metric`` event per (sample, metric).

Three input shapes, told apart from the first bytes of the source:

* NVIDIA dcgm-exporter Prometheus text (`kestrel.ingest.metrics_prom`);
* ``nvidia-smi --query-gpu=... --format=csv`` output (`kestrel.ingest.metrics_smi`);
* JSON Lines / JSON arrays of rows with ``gpu_util``, ``power_watts``, job and cloud fields,
  or ``metric_name`` / ``metric_value`` (`kestrel.ingest.metrics_json`).

Each source record (a sample line, a CSV line, a JSON object) is a *row*; every measurement
in it becomes one event: class ``metric``, activity ``sample``, ``metric_name`` /
``metric_value`` / ``metric_unit`` with names normalized across the three shapes
(`kestrel.ingest.mappings.metrics`), the source's own name in ``source_event``, and the
row's ``gpu_index``, ``instance_type``, ``job_id``, ``job_name``, ``host`` and cloud
provider / account / region. Entity type ``workload``; ``entity_id`` is the ``job_id`` when
the row has one, else ``host/gpuN`` (host lower-cased), else the host. ``raw`` is the row as
canonical JSON (for text shapes, an object built from the parsed line) and ``event_id``
hashes ``raw`` and the metric name, so re-ingesting adds nothing. The chunk's ``read``
counts rows, not events. A bad row is rejected with its line number and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import ClassVar

from kestrel.config import BATCH_ROWS
from kestrel.errors import SourceError
from kestrel.ingest.base import Chunk, Source
from kestrel.ingest.metrics_json import json_runs
from kestrel.ingest.metrics_prom import prometheus_runs
from kestrel.ingest.metrics_rows import MetricRun, to_chunk
from kestrel.ingest.metrics_smi import smi_runs

_HEAD = 64 * 1024
_PROM_SAMPLE = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?[ \t]+\S+([ \t]+-?\d+)?")

Shape = Callable[[Source, int], Iterator[MetricRun]]
SHAPES: dict[str, Shape] = {
    "prometheus": prometheus_runs,
    "nvidia-smi": smi_runs,
    "json": json_runs,
}


class MetricsReader:
    """Reads GPU / workload metrics (dcgm-exporter text, nvidia-smi CSV, JSON rows) into
    long-form ``metric`` events."""

    name: ClassVar[str] = "metrics"

    def read(self, source: Source) -> Iterator[Chunk]:
        shape = detect_shape(source)
        if shape == "empty":
            return
        if shape is None:
            raise SourceError(
                f"{source.name}: not a metrics source (expected dcgm-exporter Prometheus "
                "text, nvidia-smi --format=csv output or JSON rows)"
            )
        for run in SHAPES[shape](source, BATCH_ROWS):
            yield to_chunk(run)


def detect_shape(source: Source) -> str | None:
    """Which of `SHAPES` the source is in, from its first lines; ``empty`` for a source with
    nothing but whitespace (an empty scrape: no events, no error); None when none fits."""
    with source.open() as stream:
        head = stream.read(_HEAD)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "empty"
    if text[:1] in (b"{", b"["):
        return "json"
    for line in text.split(b"\n")[:100]:
        line = line.strip()
        if line.startswith((b"# HELP ", b"# TYPE ")):
            return "prometheus"
        if not line or line.startswith(b"#"):
            continue
        if _PROM_SAMPLE.fullmatch(line):
            return "prometheus"
        return "nvidia-smi" if b"," in line else None
    return None
