"""`GPUHijackDetector`: a GPU working when and where its own history says it should not.

Works on ``metric`` events (long form: one row per sample and metric) of GPU workloads,
summarised per entity and window (``window_minutes``, tumbling): mean and minimum
``gpu_util``, mean ``power_watts``, the regions seen, the local hour. Each window is scored
against the entity's own Welford baseline of window means *before* the batch is learnt.

Signals (a finding needs at least one):

* ``gpu_util.zscore`` / ``power_watts.zscore``: window mean ``z`` or more above the
  entity's baseline *and* at least ``min_util_delta`` points (utilisation) or
  ``min_power_ratio`` times (power) above its mean (baseline), once the baseline spans
  ``cycle_hours`` (a daily cycle). A GPU serving inference has a daily load curve and a
  training node idles at night: a baseline that has only seen the night reads the first
  morning's work as an anomaly, and the margin alone does not stop that;
* ``gpu_util.sustained``: every sample at or above ``high_util`` for at least
  ``sustain_windows`` consecutive windows (or that many samples inside one window) while the
  entity's baseline mean is below it: a normally light GPU pinned at full load (rule). The
  run of high windows is carried across batches, so 5-minute sampling (one sample per
  window) and hourly slices still see a run;
* ``gpu.off_hours``: such a high window off hours (before ``day_start`` / from ``day_end``
  in ``timezone``) on a GPU whose baseline is below ``high_util`` (rule);
* ``gpu.new_region``: a region the entity was never seen in, once it has a warm baseline
  (novelty).

A GPU that is always busy (a training node) is not flagged for being busy: its own baseline
is high. Until ``min_samples`` windows are learnt an entity is not scored at all.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import polars as pl

from kestrel.detect.baseline import WelfordBaseline
from kestrel.detect.cloud.common import (
    RUN_SCHEMA,
    StatefulDetector,
    evidence_by,
    frame,
    high_runs,
    local_hour,
    make_finding,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_id", "entity_type", "metric_name", "metric_value", "cloud_region")
_METRICS = ("gpu_util", "power_watts")
_WIN = ["entity_id", "window_start"]
_REGIONS = {"entity_id": pl.String(), "cloud_region": pl.String()}
_SINCE = {"entity_id": pl.String(), "since": pl.Datetime("us", "UTC")}


class GPUHijackDetector(StatefulDetector):
    """Compute hijacking on GPUs: spikes against the GPU's own baseline, at odd hours or
    from a new region."""

    name: ClassVar[str] = "gpu_hijack"
    _state_names = ("baseline", "regions", "since", "runs")

    def __init__(
        self,
        window_minutes: int = 5,
        high_util: float = 90.0,
        z: float = 2.5,
        min_samples: int = 12,
        min_util_delta: float = 30.0,
        min_power_ratio: float = 1.5,
        day_start: int = 6,
        day_end: int = 22,
        timezone: str = "UTC",
        cycle_hours: int = 24,
        sustain_windows: int = 3,
    ) -> None:
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self.window = timedelta(minutes=window_minutes)
        self._baseline = WelfordBaseline(min_samples, min_std=2.0)
        self._regions = pl.DataFrame(schema=_REGIONS)
        self._since = pl.DataFrame(schema=_SINCE)
        self._runs = pl.DataFrame(schema=RUN_SCHEMA)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the GPU windows of ``batch`` that break their entity's baseline."""
        where = (pl.col("class") == "metric") & pl.col("entity_id").is_not_null()
        samples = frame(batch, _COLUMNS, where).with_columns(
            pl.col("time").dt.truncate(self.window).alias("window_start")
        )
        events = samples.filter(pl.col("metric_name").is_in(list(_METRICS)))
        if events.is_empty():
            return []
        windows = self._score(_windows(events, self._params["timezone"]))
        windows, self._runs = high_runs(windows, self._runs, self.window, self._params["high_util"])
        flagged = windows.filter(_any_signal(self._params))
        self._learn_regions(events)
        if flagged.is_empty():  # most batches: no evidence to collect
            return []
        # evidence: every sample of the entity in the window (memory, temperature too)
        ev = evidence_by(samples.join(flagged.select(_WIN), on=_WIN, how="semi"), _WIN)
        return [self._finding(w) for w in flagged.join(ev, on=_WIN).iter_rows(named=True)]

    def _score(self, windows: pl.DataFrame) -> pl.DataFrame:
        scored = self._baseline.score_then_learn_wide(windows, _METRICS)
        out = self._with_age(scored)
        new = out.join(self._regions, on=["entity_id", "cloud_region"], how="anti")
        return out.join(new.select(*_WIN, pl.lit(True).alias("region_new")), on=_WIN, how="left")

    def _with_age(self, windows: pl.DataFrame) -> pl.DataFrame:
        """``cycled``: the entity's baseline spans at least ``cycle_hours``; then learn when
        each entity was first seen."""
        first = windows.group_by("entity_id").agg(pl.col("window_start").min().alias("first"))
        both = first.join(self._since, on="entity_id", how="full", coalesce=True)
        self._since = both.select(
            "entity_id", pl.coalesce("since", "first").dt.cast_time_unit("us").alias("since")
        )
        age = pl.col("window_start") - pl.col("since")
        cycle = timedelta(hours=self._params["cycle_hours"])
        joined = windows.join(self._since, on="entity_id", how="left")
        return joined.with_columns((age >= cycle).alias("cycled")).drop("since")

    def _learn_regions(self, events: pl.DataFrame) -> None:
        pairs = events.select("entity_id", "cloud_region").drop_nulls().unique()
        self._regions = pl.concat([self._regions, pairs]).unique(maintain_order=True)

    def _finding(self, w: dict[str, Any]) -> Finding:
        signals = _signals(w, self._params)
        techniques = ["T1496.001", "AML.T0034"]
        if (w["base_mean_gpu_util"] or 0) >= 20 and w["util_min"] >= self._params["high_util"]:
            techniques.append("AML.T0029")  # a busy service pinned at 100 % is starved
        title = "GPU hijack: " + ", ".join(s.name for s in signals)
        entity = Entity(w["entity_type"] or "workload", w["entity_id"])
        return make_finding(self.name, entity, w, signals, techniques, title, self.window)


def _windows(events: pl.DataFrame, tz: str) -> pl.DataFrame:
    util = pl.col("metric_value").filter(pl.col("metric_name") == "gpu_util")
    power = pl.col("metric_value").filter(pl.col("metric_name") == "power_watts")
    # the local hour of each window's first sample, converted once per window after the
    # group_by (the same hour as converting every sample; no faster in UTC, measured)
    windows = events.group_by(_WIN).agg(
        pl.col("entity_type").first(),
        util.mean().alias("gpu_util"),
        util.min().alias("util_min"),
        util.len().alias("util_n"),
        power.mean().alias("power_watts"),
        pl.col("cloud_region").drop_nulls().first().alias("cloud_region"),
        pl.col("time").first(),
    )
    return windows.with_columns(local_hour(tz).alias("hour")).drop("time")


def _light(p: dict[str, Any]) -> pl.Expr:
    """A warm baseline whose mean utilisation is below the high mark."""
    warm = pl.col("base_n_gpu_util").fill_null(0) >= p["min_samples"]
    result: pl.Expr = warm & (pl.col("base_mean_gpu_util").fill_null(100.0) < p["high_util"])
    return result


def _sustained(p: dict[str, Any]) -> pl.Expr:
    high = pl.col("util_min").fill_null(0) >= p["high_util"]
    long = (pl.col("util_n") >= p["sustain_windows"]) | (pl.col("run") >= p["sustain_windows"])
    result: pl.Expr = high & long
    return result


def _margin(metric: str, p: dict[str, Any]) -> pl.Expr:
    """The window is far enough above the mean to matter, not only many std above it."""
    mean = pl.col(f"base_mean_{metric}")
    bound = mean + p["min_util_delta"] if metric == "gpu_util" else mean * p["min_power_ratio"]
    result: pl.Expr = pl.col(metric) >= bound
    return result


def _any_signal(p: dict[str, Any]) -> pl.Expr:
    z = ((pl.col("z_gpu_util").fill_null(0) >= p["z"]) & _margin("gpu_util", p)) | (
        (pl.col("z_power_watts").fill_null(0) >= p["z"]) & _margin("power_watts", p)
    )
    z = z & pl.col("cycled")
    warm = pl.col("base_n_gpu_util").fill_null(0) >= p["min_samples"]
    new_region = pl.col("region_new").fill_null(False) & warm
    result: pl.Expr = z | (_sustained(p) & _light(p)) | new_region
    return result


def _signals(w: dict[str, Any], p: dict[str, Any]) -> list[Signal]:
    out: list[Signal] = []
    for metric in _METRICS:
        z, mean = w[f"z_{metric}"], w[f"base_mean_{metric}"]
        far = (
            (
                w[metric] >= mean + p["min_util_delta"]
                if metric == "gpu_util"
                else w[metric] >= mean * p["min_power_ratio"]
            )
            if mean is not None and w[metric] is not None
            else False
        )
        if z is not None and z >= p["z"] and far and w["cycled"]:
            detail = f"window mean {w[metric]:.1f} vs baseline mean {w[f'base_mean_{metric}']:.1f}"
            out.append(Signal(f"{metric}.zscore", round(z, 2), p["z"], detail, "baseline"))
    light = (w["base_n_gpu_util"] or 0) >= p["min_samples"] and (
        w["base_mean_gpu_util"] or 100.0
    ) < p["high_util"]
    long = max(w["util_n"], w["run"]) >= p["sustain_windows"]
    if (w["util_min"] or 0) >= p["high_util"] and long and light:
        detail = f"every sample at or above the mark for {w['run']} window(s)"
        out.append(Signal("gpu_util.sustained", round(w["util_min"], 1), p["high_util"], detail))
    night = w["hour"] < p["day_start"] or w["hour"] >= p["day_end"]
    if night and out:
        out.append(Signal("gpu.off_hours", w["hour"], None, f"local hour ({p['timezone']})"))
    if w["region_new"] and (w["base_n_gpu_util"] or 0) >= p["min_samples"]:
        out.append(Signal("gpu.new_region", w["cloud_region"], None, "first time in region",
                          "novelty"))  # fmt: skip
    return out
