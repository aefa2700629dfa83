"""`CloudAPIAbuseDetector`: per principal and window, calls that no normal workload makes.

Signals per principal and 5-minute window (tumbling, aligned to the epoch):

* ``api.burst``: at least ``burst_calls`` calls (rule);
* ``api.calls.zscore``: the window's call count is ``z`` standard deviations above the
  principal's own baseline of busy windows *and* at least ``min_ratio`` times its mean
  (baseline; scored before the batch is learnt, so a burst cannot whiten itself). The ratio
  keeps Poisson noise of busy principals (a z of 2.5 happens in about 1 % of windows) quiet;
* ``api.regions``: more than ``max_regions`` distinct regions (rule);
* ``api.error_rate``: at least ``error_rate`` of the calls denied (AccessDenied /
  Unauthorized / Forbidden) and at least ``min_errors`` of them (rule);
* ``api.off_hours``: the window is off hours (before ``day_start`` or from ``day_end``, in
  ``timezone``) *and* the principal, known for at least ``hours_warmup_h`` hours with a warm
  baseline, was never active at that hour (novelty). Off hours alone is no finding: service
  roles work all night.

The baseline counts only windows with activity (a quiet window is no row), so it learns
"how busy is this principal when it works". Principal types in ``ignore_types`` (AWS services
acting on their own) are skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import polars as pl

from kestrel.detect.baseline import WelfordBaseline
from kestrel.detect.cloud.common import (
    DENIED,
    HourMask,
    StatefulDetector,
    evidence_by,
    frame,
    local_hour,
    make_finding,
    off_hours,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_id", "entity_type", "cloud_region", "cloud_service",
            "cloud_operation", "cloud_error_code", "cloud_principal_type")  # fmt: skip
_KEYS = ["entity_id", "window_start"]


class CloudAPIAbuseDetector(StatefulDetector):
    """API bursts, region fan-out, denied-call storms and unusual hours per principal."""

    name: ClassVar[str] = "api_abuse"
    _state_names = ("baseline", "hours")

    def __init__(
        self,
        window_minutes: int = 5,
        burst_calls: int = 50,
        z: float = 2.5,
        min_samples: int = 12,
        min_ratio: float = 3.0,
        max_regions: int = 5,
        error_rate: float = 0.3,
        min_errors: int = 5,
        day_start: int = 6,
        day_end: int = 22,
        timezone: str = "UTC",
        ignore_types: tuple[str, ...] = ("AWSService",),
        hours_warmup_h: int = 24,
    ) -> None:
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self.window = timedelta(minutes=window_minutes)
        self._baseline = WelfordBaseline(min_samples, min_std=2.0)
        self._hours = HourMask()

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the busy, spread-out, denied or unusual-hour windows of ``batch``."""
        p = self._params
        events = frame(batch, _COLUMNS, _is_call(p["ignore_types"]))
        if events.is_empty():
            return []
        windows = self._score(_window_stats(events, self.window))
        flagged = windows.filter(_any_signal(p))
        if flagged.is_empty():  # most batches: no evidence to collect
            return []
        rows = events.with_columns(pl.col("time").dt.truncate(self.window).alias("window_start"))
        ev = evidence_by(rows.join(flagged.select(_KEYS), on=_KEYS, how="semi"), _KEYS)
        return [self._finding(w) for w in flagged.join(ev, on=_KEYS).iter_rows(named=True)]

    def _score(self, windows: pl.DataFrame) -> pl.DataFrame:
        """z of each window's calls (before learning), and whether its hour is new."""
        scored = self._baseline.score_then_learn(
            windows.with_columns(pl.lit("calls").alias("metric")), "calls"
        )
        hour = local_hour(self._params["timezone"]).alias("hour")
        scored = scored.with_columns(pl.col("window_start").alias("time")).with_columns(hour)
        seen = self._hours.seen(scored, "entity_id")
        self._hours.learn(scored, "entity_id", time="window_start")
        return seen

    def _finding(self, w: dict[str, Any]) -> Finding:
        signals = _signals(w, self._params)
        techniques = ["T1526", "T1580", "AML.T0075"]
        if w["iam_share"] >= 0.5:
            techniques.append("T1087.004")
        if w["regions"] > self._params["max_regions"]:
            techniques.append("T1535")
        title = "Cloud API abuse: " + ", ".join(s.name.removeprefix("api.") for s in signals)
        entity = Entity(w["entity_type"] or "principal", w["entity_id"])
        return make_finding(self.name, entity, w, signals, techniques, title, self.window)


def _is_call(ignore: tuple[str, ...]) -> pl.Expr:
    ptype = pl.col("cloud_principal_type").fill_null("")
    return (
        pl.col("class").is_in(["api_activity", "auth"])
        & pl.col("entity_id").is_not_null()
        & ~ptype.is_in(list(ignore))
    )


def _window_stats(events: pl.DataFrame, window: timedelta) -> pl.DataFrame:
    denied = pl.col("cloud_error_code").fill_null("").str.contains(DENIED)
    return (
        events.with_columns(pl.col("time").dt.truncate(window).alias("window_start"))
        .group_by(_KEYS)
        .agg(
            pl.len().alias("calls"),
            pl.col("entity_type").first(),
            pl.col("cloud_region").n_unique().alias("regions"),
            denied.sum().alias("denied"),
            (pl.col("cloud_service") == "iam").mean().alias("iam_share"),
        )
    )


def _any_signal(p: dict[str, Any]) -> pl.Expr:
    result: pl.Expr = (
        (pl.col("calls") >= p["burst_calls"])
        | _zscore(p)
        | (pl.col("regions") > p["max_regions"])
        | _denied(p)
        | _new_hour(p)
    )
    return result


def _zscore(p: dict[str, Any]) -> pl.Expr:
    ratio = pl.col("calls") >= p["min_ratio"] * pl.col("base_mean").fill_null(float("inf"))
    result: pl.Expr = (pl.col("z").fill_null(0) >= p["z"]) & ratio
    return result


def _denied(p: dict[str, Any]) -> pl.Expr:
    share = pl.col("denied") / pl.col("calls")
    result: pl.Expr = (pl.col("denied") >= p["min_errors"]) & (share >= p["error_rate"])
    return result


def _new_hour(p: dict[str, Any]) -> pl.Expr:
    age = pl.col("window_start") - pl.col("known_since")
    warm = (pl.col("base_n").fill_null(0) >= p["min_samples"]) & (
        age.fill_null(timedelta(0)) >= timedelta(hours=p["hours_warmup_h"])
    )
    result: pl.Expr = (
        off_hours(pl.col("hour"), p["day_start"], p["day_end"]) & warm & ~pl.col("hour_seen")
    )
    return result


def _signals(w: dict[str, Any], p: dict[str, Any]) -> list[Signal]:
    out: list[Signal] = []
    if w["calls"] >= p["burst_calls"]:
        out.append(Signal("api.burst", w["calls"], p["burst_calls"], "calls in the window"))
    if (w["z"] or 0) >= p["z"] and w["calls"] >= p["min_ratio"] * w["base_mean"]:
        detail = f"baseline mean {w['base_mean']:.1f}, std {w['base_std']:.1f}, n {w['base_n']}"
        out.append(Signal("api.calls.zscore", round(w["z"], 2), p["z"], detail, "baseline"))
    if w["regions"] > p["max_regions"]:
        out.append(Signal("api.regions", w["regions"], p["max_regions"], "distinct regions"))
    if w["denied"] >= p["min_errors"] and w["denied"] / w["calls"] >= p["error_rate"]:
        detail = f"{w['denied']} of {w['calls']} calls denied"
        out.append(Signal("api.error_rate", round(w["denied"] / w["calls"], 3),
                          p["error_rate"], detail))  # fmt: skip
    age = w["window_start"] - (w["known_since"] or w["window_start"])
    warm = (w["base_n"] or 0) >= p["min_samples"] and age >= timedelta(hours=p["hours_warmup_h"])
    is_off = w["hour"] < p["day_start"] or w["hour"] >= p["day_end"]
    if is_off and warm and not w["hour_seen"]:
        out.append(Signal("api.off_hours", w["hour"], None, "first activity at this hour",
                          "novelty"))  # fmt: skip
    return out
