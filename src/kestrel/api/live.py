"""The live scenario: a synthetic workload streamed hour by hour through fresh detectors,
so an analyst can watch baselines learn, signals fire and the verdict change.

Why it goes through the store: each hour's events are appended like any intake batch and
the findings are saved by the pipeline's `save_findings`, so a finding the live view shows
is a real finding (its page, evidence and status workflow work). The data is synthetic
(`kestrel.eval.generate`, clearly not real telemetry) and its findings are tagged
``live-scenario``.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kestrel.api.deps import ApiState
from kestrel.api.findings_memory import MemoryFindings
from kestrel.detect import Detector
from kestrel.eval.generate import SCENARIOS, generate
from kestrel.events import Batch
from kestrel.findings import Finding
from kestrel.findings.correlate import merge_findings
from kestrel.ingest import Source, read_source
from kestrel.pipeline import default_detectors, save_findings

TAG = "live-scenario"
MAX_RUNS = 8  # runs kept in memory; the oldest is dropped past this


@dataclass
class LiveRun:
    """One scenario being streamed: its hourly slices, its detectors and what they said."""

    run_id: str
    scenario: str
    slices: list[Batch]
    detectors: dict[str, Detector]
    step: int = 0
    findings: list[Finding] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True once every slice has been streamed."""
        return self.step >= len(self.slices)

    @property
    def merged(self) -> list[Finding]:
        """The findings so far with repeats merged (one per detector, entity and episode),
        as the findings table keeps them."""
        return merge_findings(self.findings, timedelta(minutes=5))

    @property
    def verdict(self) -> str:
        """``malicious`` once a medium or worse finding fired, else ``benign so far``."""
        worst = max((int(f.severity) for f in self.findings), default=-1)
        return "malicious" if worst >= 2 else "suspicious" if worst >= 0 else "benign so far"


def scenarios() -> tuple[str, ...]:
    """The scenarios the live view offers."""
    return SCENARIOS


def start(state: ApiState, scenario: str, hours: int = 24, seed: int = 7) -> LiveRun:
    """Generate the scenario and cut it into hourly slices; nothing is stored yet."""
    gen = generate(scenario, hours=hours, seed=seed)
    batches = [_read(gen.cloudtrail, "cloudtrail"), _read(gen.metrics, "metrics")]
    run = LiveRun(
        run_id=secrets.token_hex(6), scenario=scenario,
        slices=_hourly(pa.concat_tables(batches)),
        detectors=dict(default_detectors(skip=("sigma",))),
    )  # fmt: skip
    runs: dict[str, LiveRun] = state.live_runs
    while len(runs) >= MAX_RUNS:
        runs.pop(next(iter(runs)))
    runs[run.run_id] = run
    return run


def _read(records: list[dict[str, Any]], fmt: str) -> Batch:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    _, chunks = read_source(Source(f"live/{fmt}", lambda: io.BytesIO(data), len(data)), fmt)
    return pa.concat_tables([c.batch for c in chunks])


def _hourly(batch: Batch) -> list[Batch]:
    hours = pc.floor_temporal(batch.column("time"), unit="hour")
    batch = batch.append_column("_hour", hours).sort_by([("time", "ascending")])
    out = []
    for hour in pc.unique(batch.column("_hour")).to_pylist():
        piece = batch.filter(pc.equal(batch.column("_hour"), pa.scalar(hour, hours.type)))
        out.append(piece.drop_columns(["_hour"]))
    return out


def advance(state: ApiState, run: LiveRun, hours: int = 1) -> list[Finding]:
    """Stream the next ``hours`` slices: store them, detect, save findings."""
    new: list[Finding] = []
    for _ in range(hours):
        if run.done:
            break
        new.extend(_one_slice(state, run, run.slices[run.step]))
        run.step += 1
    return new


def _one_slice(state: ApiState, run: LiveRun, batch: Batch) -> list[Finding]:
    found: list[Finding] = []
    for det in run.detectors.values():
        found.extend(replace(f, tags=(*f.tags, TAG)) for f in det.detect(batch))
    with state.lock:
        state.store.append(batch)
        if found:
            save_findings(state.store, found)
            if isinstance(state.findings, MemoryFindings):  # an app not reading the table
                state.findings.add(found)
    run.findings.extend(found)
    run.points.append(_point(run, batch, found))
    return found


def _point(run: LiveRun, batch: Batch, found: list[Finding]) -> dict[str, Any]:
    """One chart point: the hour, events, findings so far and the strongest z-score."""
    zs = [float(s.value) for f in found for s in f.signals
          if s.name.endswith("zscore") and isinstance(s.value, int | float)]  # fmt: skip
    return {"hour": batch.column("time")[0].as_py().strftime("%H:00"), "events": batch.num_rows,
            "findings": len(run.findings), "max_z": round(max(zs), 2) if zs else 0.0}  # fmt: skip


def baselines(run: LiveRun, limit: int = 12) -> list[dict[str, Any]]:
    """The detectors' Welford baselines now: entity, metric, n, mean, std (largest n)."""
    rows: list[dict[str, Any]] = []
    for name, det in run.detectors.items():
        state = getattr(det, "state", None)
        table = state().get("baseline") if callable(state) else None
        if table is None or not {"n", "mean", "m2"} <= set(table.column_names):
            continue
        for r in table.to_pylist():
            std = (r["m2"] / (r["n"] - 1)) ** 0.5 if r["n"] > 1 else 0.0
            rows.append({"detector": name, "entity": r.get("entity_id"),
                         "metric": r.get("metric"), "n": r["n"], "mean": round(r["mean"], 2),
                         "std": round(std, 2)})  # fmt: skip
    return sorted(rows, key=lambda r: -int(r["n"]))[:limit]
