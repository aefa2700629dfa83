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

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from kestrel.detect.cloud.arrays import (
    F64,
    I64,
    NO_TIME,
    B,
    CodeBook,
    CodedBaseline,
    CodedHourMask,
    first_rows,
    group_ids,
    local_hours,
    micros_series,
    window_groups,
)
from kestrel.detect.cloud.common import (
    DENIED,
    StatefulDetector,
    batch_columns,
    coded_column,
    evidence_by,
    frame,
    make_finding,
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
        self._book = CodeBook()
        self._baseline = CodedBaseline(self._book, ("calls",), min_samples, min_std=2.0)
        self._hours = CodedHourMask(self._book)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the busy, spread-out, denied or unusual-hour windows of ``batch``.

        The windows are integer (entity code, window) keys (`arrays.group_ids`), counted and
        scored with ``bincount`` s and gathers from array state; only flagged windows
        become a frame."""
        p = self._params
        if not batch.num_rows:
            return []
        cols = batch_columns(batch, _COLUMNS)
        rows = np.flatnonzero(
            cols.select(_is_call(p["ignore_types"]).fill_null(False)).to_series().to_numpy()
        )
        if not len(rows):
            return []
        w = self._windows(batch, rows)
        flagged = np.flatnonzero(self._score(w))
        if not len(flagged):  # most batches: no evidence to collect
            return []
        found = self._flagged_frame(batch, w, flagged)
        keys = w.keys_row
        hit = np.isin(keys, w.keys[flagged])
        ev_rows = rows[hit]
        ev = frame(batch, ["entity_id"]).select("event_id", "time", "source", "raw", "entity_id")
        ev = ev[ev_rows].with_columns(
            micros_series(w.origin + (keys[hit] % w.nw) * w.step, "window_start")
        )
        ev = evidence_by(ev, _KEYS)
        return [self._finding(r) for r in found.join(ev, on=_KEYS).iter_rows(named=True)]

    def _windows(self, batch: Batch, rows: I64) -> _Windows:
        """Calls, distinct regions (a null region counts as one), denied calls and the IAM
        share per (entity, window) of the calls ``rows``."""
        wg = window_groups(batch, rows, self.window, coded_column(batch, "entity_id"), self._book)
        ids, keys, keys_row = wg.ids, wg.keys, wg.keys_row
        nw, origin, step = wg.nw, wg.origin, wg.step
        g = len(keys)
        region = coded_column(batch, "cloud_region")
        r = region.codes[rows]
        width = len(region.values) + 1
        pairs = ids * width + np.where(r >= 0, r, width - 1)
        _, distinct = group_ids(pairs, g * width)
        error = coded_column(batch, "cloud_error_code")
        is_denied = np.append(_matches(error.values, DENIED), False)
        service = coded_column(batch, "cloud_service")
        is_iam = np.append(_equals(service.values, "iam"), False)
        srow = service.codes[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            iam_share = np.bincount(ids[is_iam[srow]], minlength=g) / np.bincount(
                ids[srow >= 0], minlength=g
            )
        return _Windows(
            keys=keys, nw=nw, origin=origin, step=step, codes=keys // nw,
            wstart=origin + (keys % nw) * step, calls=np.bincount(ids, minlength=g),
            regions=np.bincount(distinct // width, minlength=g),
            denied=np.bincount(ids[is_denied[error.codes[rows]]], minlength=g),
            iam_share=iam_share, first_row=rows[first_rows(ids, g)], keys_row=keys_row,
        )  # fmt: skip

    def _score(self, w: _Windows) -> B:
        """z of each window's calls (before learning), whether its hour is new; then learn.
        Returns which windows have a signal (`_signals` not empty)."""
        p = self._params
        calls = w.calls.astype(np.float64)
        has = np.ones(len(calls), dtype=np.bool_)
        w.z, w.base_mean, w.base_n = self._baseline.score(0, w.codes, calls, has)
        w.base_std = np.where(w.base_n >= 0, self._baseline.score_std(0, w.codes), np.nan)
        self._baseline.learn(0, w.codes, calls)
        w.hour = local_hours(w.wstart, p["timezone"])
        w.hour_seen, w.known_since = self._hours.seen(w.codes, w.hour)
        self._hours.learn(w.codes, w.hour, w.wstart)
        with np.errstate(invalid="ignore", divide="ignore"):
            zscore = (np.nan_to_num(w.z, nan=0.0) >= p["z"]) & (
                w.calls >= p["min_ratio"] * np.nan_to_num(w.base_mean, nan=np.inf)
            )
            denied = (w.denied >= p["min_errors"]) & (w.denied / w.calls >= p["error_rate"])
        warmup = int(timedelta(hours=p["hours_warmup_h"]) / timedelta(microseconds=1))
        age = np.where(w.known_since == NO_TIME, 0, w.wstart - w.known_since)
        warm = (np.maximum(w.base_n, 0) >= p["min_samples"]) & (age >= warmup)
        off = (w.hour < p["day_start"]) | (w.hour >= p["day_end"])
        result: B = (
            (w.calls >= p["burst_calls"]) | zscore | (w.regions > p["max_regions"]) | denied
            | (off & warm & ~w.hour_seen)
        )  # fmt: skip
        return result

    def _flagged_frame(self, batch: Batch, w: _Windows, idx: I64) -> pl.DataFrame:
        """The flagged windows with the columns `_signals` / `_finding` read."""
        types = batch_columns(batch, ["entity_type"])["entity_type"].gather(w.first_row[idx])

        def num(values: F64, name: str) -> pl.Series:
            return pl.Series(name, values[idx], dtype=pl.Float64, nan_to_null=True)

        base_n = w.base_n[idx]
        return pl.DataFrame(
            [
                self._book.decode(w.codes[idx]).alias("entity_id"),
                micros_series(w.wstart[idx], "window_start"),
                pl.Series("calls", w.calls[idx], dtype=pl.UInt32),
                types.alias("entity_type"),
                pl.Series("regions", w.regions[idx], dtype=pl.UInt32),
                pl.Series("denied", w.denied[idx], dtype=pl.UInt32),
                num(w.iam_share, "iam_share"),
                num(w.z, "z"), num(w.base_mean, "base_mean"), num(w.base_std, "base_std"),
                pl.Series("base_n", base_n, dtype=pl.Int64).set(pl.Series(base_n < 0), None),
                pl.Series("hour", w.hour[idx], dtype=pl.Int32),
                pl.Series("hour_seen", w.hour_seen[idx]),
                micros_series(w.known_since[idx], "known_since"),
            ]
        )  # fmt: skip

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


@dataclass(slots=True)
class _Windows:
    """A batch's (entity, window) groups of calls as arrays, in (entity code, window)
    order; ``keys`` are ``entity code * nw + window index``."""

    keys: I64
    nw: int
    origin: int
    step: int
    codes: I64
    wstart: I64
    calls: I64
    regions: I64
    denied: I64
    iam_share: F64
    first_row: I64
    keys_row: I64
    z: F64 = field(default_factory=lambda: np.zeros(0))
    base_mean: F64 = field(default_factory=lambda: np.zeros(0))
    base_std: F64 = field(default_factory=lambda: np.zeros(0))
    base_n: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    hour: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    hour_seen: B = field(default_factory=lambda: np.zeros(0, np.bool_))
    known_since: I64 = field(default_factory=lambda: np.zeros(0, np.int64))


def _matches(values: pa.Array, pattern: str) -> B:
    """Per distinct value: does it contain ``pattern`` (a regex)."""
    found = pl.Series(values, dtype=pl.String).str.contains(pattern).fill_null(False)
    return np.asarray(found.to_numpy(), dtype=np.bool_)


def _equals(values: pa.Array, value: str) -> B:
    """Per distinct value: is it ``value``."""
    return np.asarray((pl.Series(values, dtype=pl.String) == value).to_numpy(), dtype=np.bool_)


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
