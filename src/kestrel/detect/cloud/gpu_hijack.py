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

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect.cloud.arrays import (
    F64,
    I64,
    NO_TIME,
    B,
    CodeBook,
    CodedBaseline,
    first_rows,
    grow,
    local_hours,
    micros_series,
    time_micros,
    to_micros,
    window_groups,
)
from kestrel.detect.cloud.common import (
    RUN_SCHEMA,
    StatefulDetector,
    batch_columns,
    coded_column,
    distinct_sorted,
    evidence_by,
    frame,
    make_finding,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_METRICS = ("gpu_util", "power_watts")
_WIN = ["entity_id", "window_start"]
_REGIONS = {"entity_id": pl.String(), "cloud_region": pl.String()}
_SINCE = {"entity_id": pl.String(), "since": pl.Datetime("us", "UTC")}


class GPUHijackDetector(StatefulDetector):
    """Compute hijacking on GPUs: spikes against the GPU's own baseline, at odd hours or
    from a new region.

    The state is kept in arrays indexed by integer entity codes (`arrays.CodeBook`): the
    windows of a batch are integer (entity, window) keys, and scoring, the run of high
    windows, the first-seen times and the regions seen are gathers and ``bincount`` s over
    them; only the flagged windows become a frame (`_flagged_frame`)."""

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
        self._book = CodeBook()
        self._baseline = CodedBaseline(self._book, _METRICS, min_samples, min_std=2.0)
        self._regions = _Regions(self._book)
        self._since = _Since(self._book)
        self._runs = _Runs(self._book)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the GPU windows of ``batch`` that break their entity's baseline."""
        if not batch.num_rows:
            return []
        cols = batch_columns(batch, ["class", "entity_id", "metric_name"])
        is_sample = ((pl.col("class") == "metric") & pl.col("entity_id").is_not_null()).fill_null(
            False
        )
        metric = pl.col("metric_name")
        flags = cols.select(
            is_sample.alias("s"),
            (is_sample & (metric == "gpu_util").fill_null(False)).alias("u"),
            (is_sample & (metric == "power_watts").fill_null(False)).alias("p"),
        )
        sample = flags["s"].to_numpy()
        util, power = flags["u"].to_numpy(), flags["p"].to_numpy()
        rows = np.flatnonzero(util | power)
        if not len(rows):
            return []
        w = self._windows(batch, rows, util[rows])
        self._score(w)
        flagged = np.flatnonzero(_any_signal_np(w, self._params))
        self._regions.learn(w.codes_row, w.region_row, w.region_values)
        if not len(flagged):  # most batches: no evidence to collect
            return []
        found = self._flagged_frame(batch, w, flagged)
        # evidence: every sample of the entity in the window (memory, temperature too)
        srows = np.flatnonzero(sample)
        keys = _row_keys(batch, srows, w)
        hit = np.isin(keys, w.keys[flagged])
        ev_rows = srows[hit]
        ev = (
            frame(batch, ["entity_id"])
            .select(pl.col("event_id", "time", "source", "raw", "entity_id"))[ev_rows]
            .with_columns(micros_series(w.origin + (keys[hit] % w.nw) * w.step, "window_start"))
        )
        ev = evidence_by(ev, _WIN)
        return [self._finding(r) for r in found.join(ev, on=_WIN).iter_rows(named=True)]

    def _windows(self, batch: Batch, rows: I64, is_util: B) -> _Windows:
        """The batch's (entity, window) groups of its utilisation and power samples."""
        entity = coded_column(batch, "entity_id")
        wg = window_groups(batch, rows, self.window, entity, self._book)
        ids, keys, codes_row, t = wg.ids, wg.keys, wg.codes_row, wg.t
        nw, origin, step = wg.nw, wg.origin, wg.step
        table = np.full(len(entity.values) + 1, -1, dtype=np.int64)
        table[entity.codes[rows]] = codes_row
        g = len(keys)
        values = batch.column("metric_value")
        value = np.asarray(pc.fill_null(pc.cast(values, pa.float64()), np.nan).to_numpy(),
                           dtype=np.float64)[rows]  # fmt: skip
        has = ~np.isnan(value)
        u_has, p_has = is_util & has, ~is_util & has
        util_n = np.bincount(ids[is_util], minlength=g)
        un = np.bincount(ids[u_has], minlength=g)
        pn = np.bincount(ids[p_has], minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            util_mean = np.bincount(ids[u_has], value[u_has], minlength=g) / un
            power_mean = np.bincount(ids[p_has], value[p_has], minlength=g) / pn
        util_min = np.full(g, np.inf)
        np.minimum.at(util_min, ids[u_has], value[u_has])
        util_min[un == 0] = np.nan
        region = coded_column(batch, "cloud_region")
        rcodes = region.codes[rows]
        first = first_rows(ids, g)
        first_region = first_rows(ids, g, rcodes >= 0)
        tz = self._params["timezone"]
        return _Windows(
            keys=keys, nw=nw, origin=origin, step=step,
            codes=keys // nw, wstart=origin + (keys % nw) * step,
            util=util_mean, util_min=util_min, util_n=util_n, power=power_mean,
            hour=local_hours(t[first], tz), first_row=rows[first],
            region=np.where(first_region >= 0, rcodes[np.maximum(first_region, 0)], -1),
            region_values=region.values, table=table, local=entity.codes,
            codes_row=codes_row, region_row=rcodes,
        )  # fmt: skip

    def _score(self, w: _Windows) -> None:
        """Score the windows against the state as of the batch start, then learn them."""
        p = self._params
        for i, (name, values) in enumerate((("gpu_util", w.util), ("power_watts", w.power))):
            has = ~np.isnan(values)
            z, mean, n = self._baseline.score(i, w.codes, values, has)
            w.z[name], w.base_mean[name], w.base_n[name] = z, mean, n
        for i, values in enumerate((w.util, w.power)):
            has = ~np.isnan(values)
            self._baseline.learn(i, w.codes[has], values[has])
        since = self._since.learn(w.codes, w.wstart)
        w.cycled = (w.wstart - since) >= int(
            timedelta(hours=p["cycle_hours"]) / timedelta(microseconds=1)
        )
        w.region_new = self._regions.new(w.codes, w.region, w.region_values)
        w.run = self._runs.update(w, p["high_util"])

    def _flagged_frame(self, batch: Batch, w: _Windows, idx: I64) -> pl.DataFrame:
        """The flagged windows as a frame with the columns `_signals` / `_finding` read
        (``entity_type`` of each window's first sample)."""
        types = batch_columns(batch, ["entity_type"])["entity_type"].gather(w.first_row[idx])

        def num(values: F64, name: str) -> pl.Series:
            return pl.Series(name, values[idx], dtype=pl.Float64, nan_to_null=True)

        def count(values: I64, name: str) -> pl.Series:
            v = values[idx]
            return pl.Series(name, v, dtype=pl.Int64).set(pl.Series(v < 0), None)

        names = pa.concat_arrays([w.region_values.cast(pa.string()), pa.nulls(1, pa.string())])
        regions = pl.Series(names, dtype=pl.String).gather(
            np.where(w.region[idx] >= 0, w.region[idx], len(w.region_values))
        )
        return pl.DataFrame(
            [
                self._book.decode(w.codes[idx]).alias("entity_id"),
                micros_series(w.wstart[idx], "window_start"),
                types.alias("entity_type"),
                num(w.util, "gpu_util"), num(w.util_min, "util_min"),
                pl.Series("util_n", w.util_n[idx], dtype=pl.UInt32),
                num(w.power, "power_watts"), regions.alias("cloud_region"),
                pl.Series("hour", w.hour[idx], dtype=pl.Int32),
                *[s for m in _METRICS for s in (num(w.z[m], f"z_{m}"),
                  num(w.base_mean[m], f"base_mean_{m}"), count(w.base_n[m], f"base_n_{m}"))],
                pl.Series("cycled", w.cycled[idx]), pl.Series("region_new", w.region_new[idx]),
                pl.Series("run", w.run[idx], dtype=pl.Int64),
            ]
        )  # fmt: skip

    def _finding(self, w: dict[str, Any]) -> Finding:
        signals = _signals(w, self._params)
        techniques = ["T1496.001", "AML.T0034"]
        if (w["base_mean_gpu_util"] or 0) >= 20 and w["util_min"] >= self._params["high_util"]:
            techniques.append("AML.T0029")  # a busy service pinned at 100 % is starved
        title = "GPU hijack: " + ", ".join(s.name for s in signals)
        entity = Entity(w["entity_type"] or "workload", w["entity_id"])
        return make_finding(self.name, entity, w, signals, techniques, title, self.window)


@dataclass(slots=True)
class _Windows:
    """A batch's (entity, window) groups as arrays, one element per window, in order of
    (batch entity code, window); ``keys`` are ``local code * nw + window index``."""

    keys: I64
    nw: int
    origin: int
    step: int
    codes: I64
    wstart: I64
    util: F64
    util_min: F64
    util_n: I64
    power: F64
    hour: I64
    first_row: I64
    region: I64
    region_values: pa.Array
    table: I64
    local: I64
    codes_row: I64
    region_row: I64
    z: dict[str, F64] = field(default_factory=dict)
    base_mean: dict[str, F64] = field(default_factory=dict)
    base_n: dict[str, I64] = field(default_factory=dict)
    cycled: B = field(default_factory=lambda: np.zeros(0, np.bool_))
    region_new: B = field(default_factory=lambda: np.zeros(0, np.bool_))
    run: I64 = field(default_factory=lambda: np.zeros(0, np.int64))


def _row_keys(batch: Batch, rows: I64, w: _Windows) -> I64:
    """The window key of each of ``rows`` (-1 for a window outside the batch's groups)."""
    t = time_micros(batch)[rows]
    wi = (t - t % w.step - w.origin) // w.step
    code = w.table[w.local[rows]]
    ok = (wi >= 0) & (wi < w.nw) & (code >= 0)
    return np.where(ok, code * w.nw + wi, -1)


class _Since:
    """When each entity's first window was (its baseline's age)."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.since = np.zeros(0, dtype=np.int64)

    def learn(self, codes: I64, wstart: I64) -> I64:
        """Record the first window of the entities new in this batch; each row's since."""
        self.since = grow(self.since, len(self.book), NO_TIME)
        first = np.full(len(self.since), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, codes, wstart)
        new = (self.since == NO_TIME) & (first != np.iinfo(np.int64).max)
        self.since[new] = first[new]
        return self.since[codes]

    @property
    def state(self) -> pl.DataFrame:
        codes = np.flatnonzero(self.since[: len(self.book)] != NO_TIME)
        out = pl.DataFrame([self.book.decode(codes).alias("entity_id"),
                            micros_series(self.since[codes], "since")])  # fmt: skip
        return out.sort("entity_id").cast(_SINCE)  # type: ignore[arg-type]

    def load_arrow(self, table: pa.Table) -> None:
        frame = _loaded(table)
        self.since = np.zeros(0, dtype=np.int64)
        if frame.height:
            codes = self.book.encode(frame["entity_id"].to_list())
            self.since = grow(self.since, len(self.book), NO_TIME)
            self.since[codes] = to_micros(frame["since"])


class _Regions:
    """The (entity, region) pairs seen, as sorted int64 pair codes."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.regions = CodeBook()
        self.pairs = np.zeros(0, dtype=np.int64)

    def _pairs(self, codes: I64, local: I64, values: pa.Array) -> I64:
        rcodes = np.append(self.regions.encode(values), -1)[local]
        return np.where(rcodes >= 0, (codes << 32) | np.maximum(rcodes, 0), -1)

    def new(self, codes: I64, local: I64, values: pa.Array) -> B:
        """True where the entity was never seen in the region (or the region is null: a
        null matches nothing)."""
        pairs = self._pairs(codes, local, values)
        pos = np.searchsorted(self.pairs, pairs)
        seen = (
            (pos < len(self.pairs)) & (self.pairs[np.minimum(pos, len(self.pairs) - 1)] == pairs)
            if len(self.pairs)
            else np.zeros(len(pairs), np.bool_)
        )
        return (pairs < 0) | ~seen

    def learn(self, codes: I64, local: I64, values: pa.Array) -> None:
        pairs = self._pairs(codes, local, values)
        self.pairs = distinct_sorted(np.concatenate([self.pairs, pairs[pairs >= 0]]))

    @property
    def state(self) -> pl.DataFrame:
        entity, region = self.pairs >> 32, self.pairs & 0xFFFFFFFF
        out = pl.DataFrame([self.book.decode(entity).alias("entity_id"),
                            self.regions.decode(region).alias("cloud_region")])  # fmt: skip
        return out.sort("entity_id", "cloud_region").cast(_REGIONS)  # type: ignore[arg-type]

    def load_arrow(self, table: pa.Table) -> None:
        frame = _loaded(table).drop_nulls()
        self.pairs = np.zeros(0, dtype=np.int64)
        if frame.height:
            codes = self.book.encode(frame["entity_id"].to_list())
            rcodes = self.regions.encode(frame["cloud_region"].to_list())
            self.pairs = distinct_sorted((codes << 32) | rcodes)


class _Runs:
    """Per entity: its last window if that one was high, and the run of high windows it
    ended (`RUN_SCHEMA`), so a run continues across batches."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.end = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0, dtype=np.int64)

    def _fit(self) -> None:
        self.end = grow(self.end, len(self.book), NO_TIME)
        self.length = grow(self.length, len(self.book), 0)

    def update(self, w: _Windows, mark: float) -> I64:
        """``run`` of each window: how many consecutive windows (this one included) of the
        entity had every sample at or above ``mark`` (0 when this one did not). The windows
        are in (entity, window) order, so a streak is a stretch of adjacent high windows."""
        self._fit()
        high = np.nan_to_num(w.util_min, nan=0.0) >= mark
        run = np.zeros(len(high), dtype=np.int64)
        hi = np.flatnonzero(high)
        if len(hi):
            code, ws = w.codes[hi], w.wstart[hi]
            start = np.ones(len(hi), dtype=np.bool_)
            start[1:] = (code[1:] != code[:-1]) | (ws[1:] - ws[:-1] != w.step)
            idx = np.arange(len(hi))
            head = np.maximum.accumulate(np.where(start, idx, 0))
            carry = np.where(ws[head] - w.step == self.end[code], self.length[code], 0)
            run[hi] = idx - head + 1 + carry
        # each entity's last window in the batch: its run state from now on
        last = np.ones(len(high), dtype=np.bool_)
        last[:-1] = w.codes[1:] != w.codes[:-1]
        ends = np.flatnonzero(last)
        code = w.codes[ends]
        self.end[code] = np.where(high[ends], w.wstart[ends], NO_TIME)
        self.length[code] = np.where(high[ends], run[ends], 0)
        return run

    @property
    def state(self) -> pl.DataFrame:
        self._fit()
        codes = np.flatnonzero(self.end[: len(self.book)] != NO_TIME)
        out = pl.DataFrame([self.book.decode(codes).alias("entity_id"),
                            micros_series(self.end[codes], "run_end"),
                            pl.Series("run_len", self.length[codes], dtype=pl.Int64)])  # fmt: skip
        return out.sort("entity_id").cast(RUN_SCHEMA)  # type: ignore[arg-type]

    def load_arrow(self, table: pa.Table) -> None:
        frame = _loaded(table)
        self.end = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0, dtype=np.int64)
        if frame.height:
            codes = self.book.encode(frame["entity_id"].to_list())
            self._fit()
            self.end[codes] = to_micros(frame["run_end"])
            self.length[codes] = frame["run_len"].to_numpy()


def _loaded(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _any_signal_np(w: _Windows, p: dict[str, Any]) -> B:
    """`_signals` is not empty: the same tests over the window arrays (NaN as null)."""
    util_mean, power_mean = w.base_mean["gpu_util"], w.base_mean["power_watts"]
    with np.errstate(invalid="ignore"):
        z_util = (np.nan_to_num(w.z["gpu_util"], nan=0.0) >= p["z"]) & (
            w.util >= util_mean + p["min_util_delta"]
        )
        z_power = (np.nan_to_num(w.z["power_watts"], nan=0.0) >= p["z"]) & (
            w.power >= power_mean * p["min_power_ratio"]
        )
    warm = np.maximum(w.base_n["gpu_util"], 0) >= p["min_samples"]
    light = warm & (np.nan_to_num(util_mean, nan=100.0) < p["high_util"])
    high = np.nan_to_num(w.util_min, nan=0.0) >= p["high_util"]
    sustained = high & ((w.util_n >= p["sustain_windows"]) | (w.run >= p["sustain_windows"]))
    result: B = ((z_util | z_power) & w.cycled) | (sustained & light) | (w.region_new & warm)
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
