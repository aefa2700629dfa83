"""Prometheus text exposition, as NVIDIA dcgm-exporter serves it, into metric rows.

One row per sample line: ``name{label="value",...} value [timestamp_ms]``. ``# HELP`` /
``# TYPE`` and other comments are skipped; NaN and ±Inf samples carry no measurement and are
skipped too (not rejected). Labels fill the context columns through
`kestrel.ingest.mappings.metrics.PROMETHEUS_LABELS`; DCGM families get Kestrel's names and
units through ``DCGM``, and the family stays in ``source_event``.

**Time.** A sample's own millisecond timestamp wins. dcgm-exporter writes none, and a
scrape has no time of its own, so the text must say when it was taken: a
``# kestrel-scrape-time: <ISO-8601 or epoch>`` line gives the time of every sample below it
(until the next such line, so scrapes can be appended to one file). A sample with neither is
rejected with a reason that names the fix. Kestrel never uses the ingest time or the file's
mtime: the time is part of the event's identity, and re-ingesting the same file (or a copy)
must add nothing. ``# kestrel-host: NAME`` names the host when the samples have no
``Hostname`` label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from kestrel.ingest.base import Source
from kestrel.ingest.mappings.metrics import DCGM, PROMETHEUS_LABELS, MetricSpec
from kestrel.ingest.metrics_rows import (
    Context,
    Metric,
    MetricRun,
    directive,
    gpu_index,
    text_lines,
    time_text,
)
from kestrel.ingest.times import epoch_to_iso

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(?:,|$)')
_UNESCAPE = re.compile(r"\\(.)")
NO_TIME = (
    "sample has no timestamp and no '# kestrel-scrape-time: <ISO-8601>' line above it "
    "(add one with the time of the scrape)"
)


@dataclass(slots=True)
class _Scrape:
    """What the ``# kestrel-...`` lines above a sample said."""

    time: str | None = None  # as written, kept in raw
    host: str | None = None


def prometheus_runs(source: Source, batch_rows: int) -> Iterator[MetricRun]:
    """Rows of a Prometheus text source, ``batch_rows`` at a time."""
    scrape = _Scrape()
    run = MetricRun(source.name)
    for line_no, text in text_lines(source):
        if text is None:
            run.reject_long_line(line_no)
        elif text.startswith("#"):
            _comment(scrape, text)
        elif text:
            run.read += 1
            _sample(run, scrape, line_no, text)
        if run.size >= batch_rows:
            yield run
            run = MetricRun(source.name)
    if run.read:
        yield run


def _comment(scrape: _Scrape, text: str) -> None:
    found = directive(text)
    if found is None:
        return
    key, value = found
    if key == "scrape-time":
        scrape.time = value
    elif key == "host":
        scrape.host = value or None


def _sample(run: MetricRun, scrape: _Scrape, line_no: int, text: str) -> None:
    """Add one sample line to ``run``, or reject it with the reason."""
    match = _SAMPLE.fullmatch(text)
    if match is None:
        run.reject(line_no, "not a Prometheus sample line", text)
        return
    name, label_text, value_text, stamp = match.groups()
    labels = _labels(label_text or "")
    if labels is None:
        run.reject(line_no, f"malformed labels in {name!r}", text)
        return
    value = _number(value_text)
    if value is None:
        run.reject(line_no, f"{name}: value {value_text!r} is not a number", text)
    elif math.isfinite(value):  # NaN / Inf: no measurement
        _keep(run, scrape, line_no, (name, labels, value, stamp), text)


def _keep(
    run: MetricRun,
    scrape: _Scrape,
    line_no: int,
    sample: tuple[str, dict[str, str], float, str | None],
    text: str,
) -> None:
    name, labels, value, stamp = sample
    if stamp:
        when = epoch_to_iso(int(stamp))  # Prometheus timestamps are milliseconds
    elif scrape.time:
        when = time_text(scrape.time)
    else:
        run.reject(line_no, f"{name}: {NO_TIME}", text)
        return
    ctx = _context(labels, when, scrape.host)
    if isinstance(ctx, str):
        run.reject(line_no, f"{name}: {ctx}", text)
        return
    row: dict[str, object] = {"name": name, "labels": labels, "value": value}
    row.update({"timestamp": int(stamp)} if stamp else {"scrape_time": scrape.time})
    spec = DCGM.get(name) or MetricSpec(name, None)
    metric = Metric(spec.name, value, spec.unit, name)
    run.add(line_no, ctx, msgspec.json.encode(row), [metric])


def _labels(text: str) -> dict[str, str] | None:
    """The label set, sorted by name (so label order does not change identity), or None
    when the text is not a label list."""
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None or match.end() == pos:
            return None
        labels[match.group(1)] = _UNESCAPE.sub(_unescape, match.group(2))
        pos = match.end()
    return dict(sorted(labels.items()))


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return "\n" if char == "n" else char


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _context(labels: dict[str, str], time: str, host: str | None) -> Context | str:
    """The row's context from its labels, or the reason it has none (a non-integer gpu)."""

    def pick(column: str) -> str | None:
        return next((labels[n] for n in PROMETHEUS_LABELS[column] if labels.get(n)), None)

    gpu = pick("gpu_index")
    index = None if gpu is None else gpu_index(gpu)
    if gpu is not None and index is None:
        return f"gpu label {gpu!r} is not an index"
    return Context(
        time, pick("host") or host, index, pick("instance_type"),
        pick("job_id"), pick("job_name"), pick("cloud_provider"), pick("cloud_account"),
        pick("cloud_region"),
    )  # fmt: skip
