"""``nvidia-smi --query-gpu=timestamp,name,index,... --format=csv`` output into metric rows.

The first line is the header (``timestamp, name, index, utilization.gpu [%], power.draw
[W], ...``; with ``nounits`` the ``[unit]`` parts are absent and so are the units after the
values). Every data line is one row; each measured property becomes a metric named through
`kestrel.ingest.mappings.metrics.NVIDIA_SMI` (``utilization.gpu`` → ``gpu_util``), with the
property name in ``source_event``. ``[N/A]`` / ``[Not Supported]`` values are skipped, not
rejected. A wrong column count, a measured value that is not a number or an index that is
not an integer rejects the line.

**Time.** The ``timestamp`` column (``2024/05/01 12:00:00.123``) is the GPU host's local
time with no zone; Kestrel reads it as UTC (run nvidia-smi with ``TZ=UTC`` to make that
true). The header must include ``timestamp``; ``noheader`` output cannot be read.
**Host.** nvidia-smi does not print the host name: a ``# kestrel-host: NAME`` line before
the header supplies it (it is then part of each row's ``raw``, so identical readings from
two hosts stay two events); without one the host is unknown.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from kestrel.ingest.base import Source
from kestrel.ingest.mappings.metrics import NVIDIA_SMI, NVIDIA_SMI_TEXT, UNITS
from kestrel.ingest.metrics_rows import (
    Context,
    Metric,
    MetricRun,
    directive,
    gpu_index,
    text_lines,
)

_HEADER_ITEM = re.compile(r"(.*?)\s*(?:\[(.*)\])?")
_SMI_TIME = re.compile(r"(\d{4})/(\d{2})/(\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)")
NO_TIME_COLUMN = (
    "the header has no timestamp column (query nvidia-smi with --query-gpu=timestamp,... "
    "and without noheader)"
)


@dataclass(frozen=True, slots=True)
class _Header:
    """The CSV header: each column's text as written, its property name and its unit."""

    texts: tuple[str, ...]
    names: tuple[str, ...]
    units: tuple[str | None, ...]

    @classmethod
    def parse(cls, line: str) -> _Header:
        texts = tuple(_split(line))
        items = [_HEADER_ITEM.fullmatch(text) for text in texts]
        names = tuple(m.group(1) if m else t for m, t in zip(items, texts, strict=True))
        units = tuple(m.group(2) if m else None for m in items)
        return cls(texts, names, units)


def smi_runs(source: Source, batch_rows: int) -> Iterator[MetricRun]:
    """Rows of an nvidia-smi CSV source, ``batch_rows`` at a time."""
    header: _Header | None = None
    host: str | None = None
    run = MetricRun(source.name)
    for line_no, text in text_lines(source):
        if text is None:
            run.reject_long_line(line_no)
        elif text.startswith("#"):
            host = _host(text, host)
        elif text and header is None:
            header = _Header.parse(text)
        elif text and header is not None:
            run.read += 1
            _row(run, header, host, line_no, text)
        if run.size >= batch_rows:
            yield run
            run = MetricRun(source.name)
    if run.read:
        yield run


def _host(comment: str, host: str | None) -> str | None:
    """The host a ``# kestrel-host: NAME`` comment names; other comments change nothing."""
    found = directive(comment)
    if found is None or found[0] != "host":
        return host
    return found[1] or None


def _row(run: MetricRun, header: _Header, host: str | None, line_no: int, text: str) -> None:
    """Add one data line to ``run``, or reject it with the reason."""
    values = _split(text)
    if len(values) != len(header.names):
        reason = f"expected {len(header.names)} columns as in the header, got {len(values)}"
        run.reject(line_no, reason, text)
        return
    by_name = dict(zip(header.names, values, strict=True))
    if "timestamp" not in by_name:
        run.reject(line_no, NO_TIME_COLUMN, text)
        return
    ctx = _context(by_name, host)
    if isinstance(ctx, str):
        run.reject(line_no, ctx, text)
        return
    metrics = _metrics(header, values)
    if isinstance(metrics, str):
        run.reject(line_no, metrics, text)
        return
    row = ({"kestrel-host": host} if host else {}) | dict(zip(header.texts, values, strict=True))
    run.add(line_no, ctx, msgspec.json.encode(row), metrics)


def _split(line: str) -> list[str]:
    return [value.strip() for value in next(csv.reader([line], skipinitialspace=True), [])]


def _context(by_name: dict[str, str], host: str | None) -> Context | str:
    index = by_name.get("index")
    gpu = None if index is None else gpu_index(index)
    if index is not None and gpu is None:
        return f"index {index!r} is not a GPU index"
    return Context(_iso(by_name["timestamp"]), host, gpu)


def _iso(value: str) -> str:
    """``2024/05/01 12:00:00.123`` → ``2024-05-01T12:00:00.123Z`` (local time read as UTC);
    anything else is passed on as written, to be accepted or rejected as ISO-8601."""
    match = _SMI_TIME.fullmatch(value)
    if match is None:
        return value
    year, month, day, clock = match.groups()
    return f"{year}-{month}-{day}T{clock}Z"


def _metrics(header: _Header, values: list[str]) -> list[Metric] | str:
    """The row's measurements, or the reason the row is rejected."""
    metrics: list[Metric] = []
    for name, unit, text in zip(header.names, header.units, values, strict=True):
        if name in NVIDIA_SMI_TEXT or _not_available(text):
            continue
        spec = NVIDIA_SMI.get(name)
        number = _number(text)
        if number is None:
            if spec is not None:
                return f"{name}: value {text!r} is not a number"
            continue  # a descriptive column the table does not know: kept in raw only
        if math.isfinite(number):
            kestrel_name, kestrel_unit = spec or (name, UNITS.get(unit or "", unit))
            metrics.append(Metric(kestrel_name, number, kestrel_unit, name))
    return metrics


def _not_available(text: str) -> bool:
    """``[N/A]``, ``[Not Supported]``, ``[Unknown Error]``, empty: no measurement."""
    return not text or text.startswith("[") or text.upper() == "N/A"


def _number(text: str) -> float | None:
    """The number before the unit: ``250.12 W`` → 250.12; None when there is none."""
    try:
        return float(text.split()[0])
    except ValueError:
        return None
