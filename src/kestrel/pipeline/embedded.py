"""The embedded runner: events from the store in time slices → detectors → findings.

Why time slices (default one hour) and not row counts: baseline detectors score a batch
against the state as of the batch start, so a batch is also the unit of "what was known
before". An hour keeps that unit the same whatever the event rate. The state of every
detector that has one is loaded before and checkpointed after, with a cursor (the last event
time processed) so the next run only reads newer events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.compute as pc

from kestrel.detect import DETECTORS, Detector
from kestrel.detect.cloud.common import forget_batch_columns
from kestrel.detect.profile import EntityProfiler
from kestrel.events import Batch
from kestrel.findings import Finding
from kestrel.pipeline.persist import save_findings
from kestrel.pipeline.suppress import active_suppressions, split_suppressed
from kestrel.store import EventFilter, Store
from kestrel.store.findings import StateTable
from kestrel.store.profiles import ProfileTable

Progress = Callable[[int], None]


@dataclass
class RunReport:
    """What a detection run did."""

    events: int = 0
    slices: int = 0
    findings: list[Finding] = field(default_factory=list)
    stored: int = 0
    suppressed: int = 0  # findings an analyst's false positive suppressed (not stored)
    by_detector: dict[str, int] = field(default_factory=dict)


def default_detectors(skip: tuple[str, ...] = ()) -> dict[str, Detector]:
    """One instance of every registered detector (constructor defaults), except ``skip``."""
    return {name: cls() for name, cls in DETECTORS.items() if name not in skip}


def run_detection(
    store: Store,
    detectors: Mapping[str, Detector],
    slice_: timedelta = timedelta(hours=1),
    progress: Progress | None = None,
    persist: bool = True,
    profiles: bool = True,
    enrich: Callable[[Batch], Batch] | None = None,
) -> RunReport:
    """Run ``detectors`` over the events newer than the cursor; store merged findings.
    With ``profiles``, every slice also updates the entity profiles kept in the store.
    ``enrich`` (an `kestrel.enrich.EnrichStage`) runs on each slice before the detectors, so
    they see IOC / YARA / GeoIP / reputation columns and the threat score."""
    states = StateTable(store)
    for name, det in detectors.items():
        _load(det, states.load(name))
    profiler = _profiler(store) if profiles else None
    report = RunReport()
    cursor = states.cursor()
    last = cursor
    for batch in time_slices(store, cursor, slice_):
        report.events += batch.num_rows
        report.slices += 1
        if enrich is not None:
            batch = enrich(batch)
        for name, det in detectors.items():
            found = det.detect(batch)
            report.by_detector[name] = report.by_detector.get(name, 0) + len(found)
            report.findings.extend(found)
        if profiler:
            profiler.learn(batch)
        last = batch.column("time")[-1].as_py()
        if progress:
            progress(batch.num_rows)
    forget_batch_columns()
    report.findings.extend(_flush(detectors))
    _drop_suppressed(store, report)
    if persist:
        report.stored = save_findings(store, report.findings)
        _checkpoint(states, detectors, last)
        if profiler and report.events:
            ProfileTable(store).save(profiler.state())
    return report


def _drop_suppressed(store: Store, report: RunReport) -> None:
    """Leave out the findings an active suppression covers (`kestrel.pipeline.suppress`)."""
    suppressions = active_suppressions(store) if report.findings else []
    if suppressions:
        kept, dropped = split_suppressed(report.findings, suppressions, datetime.now(UTC))
        report.findings, report.suppressed = kept, len(dropped)


def _profiler(store: Store) -> EntityProfiler:
    profiler = EntityProfiler()
    profiler.load_state(ProfileTable(store).load())
    return profiler


def time_slices(store: Store, after: datetime | None, slice_: timedelta) -> Iterator[Batch]:
    """Batches of the stored events newer than ``after``, one per ``slice_`` of time."""
    span = store.query(
        "SELECT min(time) AS lo, max(time) AS hi FROM events"
        + (" WHERE time > ?" if after else ""),
        [after] if after else None,
    ).to_pylist()[0]
    if span["lo"] is None:
        return
    lo: datetime = span["lo"]
    start: datetime | None = lo
    while start is not None and start <= span["hi"]:
        end = start + slice_
        batch = store.events(EventFilter(start=start, end=end))
        if after is not None:
            batch = batch.filter(_newer(batch, after))
        if batch.num_rows:
            yield batch
            start = end
        else:
            start = _next_slice(store, lo, end, slice_)


def _next_slice(store: Store, lo: datetime, after: datetime, slice_: timedelta) -> datetime | None:
    """The start of the slice holding the first event at or after ``after``: data with long
    gaps (a sample from 2024 beside a day from 2026) must not cost one query per empty hour."""
    nxt = store.query("SELECT min(time) AS t FROM events WHERE time >= ?", [after]).to_pylist()
    t: datetime | None = nxt[0]["t"]
    return None if t is None else lo + ((t - lo) // slice_) * slice_


def _newer(batch: Batch, after: datetime) -> Any:
    return pc.greater(batch.column("time"), after)


def _load(det: Detector, tables: dict[str, Any]) -> None:
    load = getattr(det, "load_state", None)
    if tables and callable(load):
        load(tables)


def _flush(detectors: Mapping[str, Detector]) -> list[Finding]:
    out: list[Finding] = []
    for det in detectors.values():
        flush = getattr(det, "flush", None)
        if callable(flush):
            out.extend(flush())
    return out


def _checkpoint(
    states: StateTable, detectors: Mapping[str, Detector], last: datetime | None
) -> None:
    now = datetime.now(UTC)
    for name, det in detectors.items():
        state = getattr(det, "state", None)
        if callable(state):
            states.save(name, state(), now)
    if last is not None:
        states.set_cursor(last, now)
