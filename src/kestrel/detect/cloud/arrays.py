"""Detector state as NumPy arrays indexed by integer entity codes.

Why: with 5-minute windows nearly every event is its own (entity, window), so a detector
that keeps its state in Polars frames pays a join of every window against per-entity state
(and a merge of that state) for every hourly batch: about 20 small Polars calls, 35-50 ms
per batch whatever its size. Here each entity string gets a dense integer code once (a
`CodeBook` kept in the detector, fed with the batch's distinct values, not its rows), the
(entity, window) groups are integer keys, and scoring and learning are gathers,
``bincount`` and ``minimum.at`` over arrays: a few ms per batch.

The state still leaves and enters as the same Arrow tables as before (entity strings, one row
per entity), so checkpoints of either form load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect.baseline import STATE_SCHEMA
from kestrel.events import Batch

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
NO_TIME = np.iinfo(np.int64).min
"""Sentinel of an int64 microsecond time that is null."""


class CodeBook:
    """Dense integer codes of strings, in order of first appearance, for the life of the
    detector that owns it. Fed with a batch's distinct values (a few thousand), not its rows,
    and looked up with Arrow's ``index_in`` (one hash lookup per value in C)."""

    def __init__(self) -> None:
        self._values: pa.Array = pa.array([], pa.string())
        # per intern book (`Coded.intern`): this book's code of each interned id, -1 where
        # not looked up yet (`global_codes`)
        self._of_interned: dict[CodeBook, I64] = {}

    def __len__(self) -> int:
        return len(self._values)

    def encode(self, values: pa.Array | Sequence[str]) -> I64:
        """The code of each value (all non-null), new ones assigned the next codes."""
        arr = (
            values.cast(pa.string())
            if isinstance(values, pa.Array)
            else pa.array(values, pa.string())
        )
        if not len(arr):
            return np.zeros(0, dtype=np.int64)
        found = pc.fill_null(pc.index_in(arr, value_set=self._values), -1)
        codes = np.array(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        missing = codes < 0
        if missing.any():
            new = pc.dictionary_encode(arr.filter(pa.array(missing)))
            codes[missing] = len(self._values) + np.asarray(new.indices.to_numpy(), np.int64)
            self._values = pa.concat_arrays([self._values, new.dictionary.cast(pa.string())])
        return codes

    def decode(self, codes: I64) -> pl.Series:
        """The strings of ``codes``."""
        values = pl.Series(self._values.take(pa.array(codes, pa.int64())), dtype=pl.String)
        return values


@dataclass(frozen=True, slots=True)
class Coded:
    """A string column of a batch, dictionary-encoded: ``codes`` per row (-1 for a null)
    index ``values`` (the distinct non-null strings). ``interned``, when given: each value's
    code in ``intern``, a book shared by every reader of the column (`global_codes` then
    looks values up in a detector's book once per value over the life of both books, not
    once per batch)."""

    codes: I64
    values: pa.Array
    interned: I64 | None = None
    intern: CodeBook | None = None


def encode_column(column: pa.ChunkedArray | pa.Array) -> Coded:
    """Arrow ``dictionary_encode`` of a string column: one pass over the rows."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = (
            encoded.combine_chunks()
            if encoded.num_chunks
            else pa.array([], pa.string()).dictionary_encode()
        )
    indices = pc.fill_null(encoded.indices, -1)
    codes = np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return Coded(codes, encoded.dictionary)


def global_codes(coded: Coded, book: CodeBook, rows: I64 | None = None) -> I64:
    """Each row's code in ``book`` (-1 for a null), of ``rows`` only if given: only the
    values those rows use are looked up (and added)."""
    local = coded.codes if rows is None else coded.codes[rows]
    used = np.flatnonzero(np.bincount(local[local >= 0], minlength=len(coded.values)))
    table = np.full(len(coded.values) + 1, -1, dtype=np.int64)
    if coded.interned is None or coded.intern is None:
        table[used] = book.encode(coded.values.take(pa.array(used, pa.int64())))
        return table[local]
    # the values this book has had through the same intern book: a gather; the others
    # (in the same order, so new values get the codes they always got) through `encode`
    ids = coded.interned[used]
    known = grow(book._of_interned.get(coded.intern, np.zeros(0, np.int64)), len(coded.intern), -1)
    book._of_interned[coded.intern] = known
    codes = known[ids]
    miss = np.flatnonzero(codes < 0)
    if len(miss):
        codes[miss] = book.encode(coded.values.take(pa.array(used[miss], pa.int64())))
        known[ids[miss]] = codes[miss]
    table[used] = codes
    return table[local]


def time_micros(batch: Batch) -> I64:
    """``time`` of every row as int64 microseconds since the epoch (UTC)."""
    col = pc.cast(batch.column("time"), pa.int64())
    return np.asarray(col.to_numpy(), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class WindowGroups:
    """The (entity, window) groups of a batch's rows: ``keys`` are ``entity code * nw +
    window index`` (windows of ``step`` µs from ``origin``), in key order; per row its time
    ``t``, entity code ``codes_row``, key ``keys_row`` and group ``ids``."""

    step: int
    origin: int
    nw: int
    t: I64
    codes_row: I64
    keys_row: I64
    ids: I64
    keys: I64


def window_groups(
    batch: Batch, rows: I64, window: timedelta, entity: Coded, book: CodeBook
) -> WindowGroups:
    """Group ``rows`` of ``batch`` by (entity, window): what api_abuse and gpu_hijack both
    score, with ``entity`` the batch's coded ``entity_id`` and ``book`` the detector's codes."""
    step = int(window / timedelta(microseconds=1))
    t = time_micros(batch)[rows]
    wstart = t - t % step
    origin = int(wstart.min())
    wi = (wstart - origin) // step
    nw = int(wi.max()) + 1
    codes_row = global_codes(entity, book, rows)
    keys_row = codes_row * nw + wi
    ids, keys = group_ids(keys_row, len(book) * nw)
    return WindowGroups(step, origin, nw, t, codes_row, keys_row, ids, keys)


def group_ids(keys: I64, space: int) -> tuple[I64, I64]:
    """Dense group ids ``0..g-1`` of int64 ``keys`` (all in ``[0, space)``), ordered by key,
    and the distinct keys. A presence table when ``space`` is small against the rows, else
    one sort."""
    if space <= 32 * len(keys) + 65536:  # a table of up to ~32 bytes per key beats a sort
        present = np.zeros(space, dtype=np.bool_)
        present[keys] = True
        distinct = np.flatnonzero(present)
        rank = np.cumsum(present) - 1
        return rank[keys], distinct.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    start = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, np.bool_)
    ids = np.empty(len(keys), dtype=np.int64)
    ids[order] = np.cumsum(start) - 1
    return ids, ordered[start]


def first_rows(ids: I64, groups: int, where: B | None = None) -> I64:
    """Per group: its first row (in row order), among ``where`` if given; -1 if none."""
    rows = np.arange(len(ids)) if where is None else np.flatnonzero(where)
    first = np.full(groups, len(ids), dtype=np.int64)
    np.minimum.at(first, ids[rows], rows)
    first[first == len(ids)] = -1
    return first


def grow(values: I64, size: int, fill: int) -> I64:
    """``values`` extended with ``fill`` to at least ``size`` (doubling, so rarely)."""
    if len(values) >= size:
        return values
    out = np.full(max(size, 2 * len(values), 1024), fill, dtype=values.dtype)
    out[: len(values)] = values
    return out


def micros_series(values: I64, name: str) -> pl.Series:
    """Microsecond times as a UTC Datetime series, `NO_TIME` as null."""
    series = pl.Series(name, values, dtype=pl.Int64)
    if (values == NO_TIME).any():
        series = series.set(pl.Series(values == NO_TIME), None)
    return series.cast(pl.Datetime("us", "UTC"))


def to_micros(series: pl.Series) -> I64:
    """A Datetime series as int64 microseconds, null as `NO_TIME`."""
    us = series.cast(pl.Datetime("us", "UTC")).dt.epoch("us").fill_null(NO_TIME)
    return np.asarray(us.to_numpy(), dtype=np.int64)


def local_hours(micros: I64, tz: str) -> I64:
    """Hour of day of each time in timezone ``tz`` (arithmetic for UTC)."""
    if tz == "UTC":
        return np.asarray((micros // 3_600_000_000) % 24, dtype=np.int64)
    series = pl.Series(micros).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(tz)
    return np.asarray(series.dt.hour().cast(pl.Int64).to_numpy(), dtype=np.int64)


class CodedBaseline:
    """Welford state ``(n, mean, m2)`` per (entity code, metric) in arrays: the same numbers
    and the same merge as `kestrel.detect.baseline.WelfordBaseline` (Chan's formula term by
    term), scored before learnt, persisted as its ``(entity_id, metric, n, mean, m2)`` table."""

    def __init__(self, book: CodeBook, metrics: Sequence[str], min_samples: int,
                 min_std: float) -> None:  # fmt: skip
        self.book = book
        self.metrics = tuple(metrics)
        self.min_samples = min_samples
        self.min_std = min_std
        m = len(self.metrics)
        self.n = np.zeros((m, 0), dtype=np.int64)
        self.mean = np.zeros((m, 0), dtype=np.float64)
        self.m2 = np.zeros((m, 0), dtype=np.float64)

    def _fit(self) -> None:
        size = len(self.book)
        if self.n.shape[1] < size:
            width = max(size, 2 * self.n.shape[1], 1024)
            m = len(self.metrics)
            for name in ("n", "mean", "m2"):
                old = getattr(self, name)
                new = np.zeros((m, width), dtype=old.dtype)
                new[:, : old.shape[1]] = old
                setattr(self, name, new)

    def score(self, metric: int, codes: I64, values: F64, has: B) -> tuple[F64, F64, I64]:
        """Per row: z (NaN unless the row has a value and the entity ``min_samples``),
        baseline mean (NaN where no value or no baseline) and n (-1 likewise)."""
        self._fit()
        n = self.n[metric][codes]
        mean = self.mean[metric][codes]
        var = np.where(n > 1, self.m2[metric][codes] / np.maximum(n - 1, 1), 0.0)
        std = np.maximum(np.sqrt(var), self.min_std)
        known = has & (n > 0)
        ready = has & (n >= self.min_samples)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(ready, (values - mean) / std, np.nan)
        return z, np.where(known, mean, np.nan), np.where(known, n, -1)

    def score_std(self, metric: int, codes: I64) -> F64:
        """The baseline standard deviation (sample, n - 1) of each row's entity."""
        self._fit()
        n = self.n[metric][codes]
        var = np.where(n > 1, self.m2[metric][codes] / np.maximum(n - 1, 1), 0.0)
        return np.asarray(np.sqrt(var), dtype=np.float64)

    def learn(self, metric: int, codes: I64, values: F64) -> None:
        """Fold the values (one per row, no NaN) into their entities' state."""
        if not len(codes):
            return
        self._fit()
        size = len(self.book)
        bn = np.bincount(codes, minlength=size)
        touched = np.flatnonzero(bn)
        bmean = np.bincount(codes, values, minlength=size)[touched] / bn[touched]
        full_mean = np.zeros(size)
        full_mean[touched] = bmean
        dev = values - full_mean[codes]
        bm2 = np.bincount(codes, dev * dev, minlength=size)[touched]
        n0 = self.n[metric][touched]
        mean0 = self.mean[metric][touched]
        m20 = self.m2[metric][touched]
        nr = bn[touched]
        n = n0 + nr
        delta = bmean - mean0
        nf = n.astype(np.float64)
        self.n[metric][touched] = n
        self.mean[metric][touched] = mean0 + delta * nr / nf
        self.m2[metric][touched] = m20 + bm2 + delta * delta * n0 * nr / nf

    @property
    def state(self) -> pl.DataFrame:
        """``(entity_id, metric, n, mean, m2)``, one row per entity and metric learnt."""
        self._fit()
        parts = []
        for i, name in enumerate(self.metrics):
            codes = np.flatnonzero(self.n[i][: len(self.book)] > 0)
            parts.append(
                pl.DataFrame(
                    {
                        "entity_id": self.book.decode(codes),
                        "metric": pl.repeat(name, len(codes), dtype=pl.String, eager=True),
                        "n": self.n[i][codes],
                        "mean": self.mean[i][codes],
                        "m2": self.m2[i][codes],
                    }
                )
            )
        # by entity, then metric: the same table whatever order the codes were assigned in
        out = pl.concat(parts).sort("entity_id", "metric", maintain_order=True)
        return out.cast(STATE_SCHEMA)  # type: ignore[arg-type]

    def load_arrow(self, table: pa.Table) -> None:
        """Restore a checkpointed ``(entity_id, metric, n, mean, m2)`` table (replaces the
        metrics it holds rows of; rows of other metrics are ignored)."""
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        m = len(self.metrics)
        self.n = np.zeros((m, 0), dtype=np.int64)
        self.mean = np.zeros((m, 0), dtype=np.float64)
        self.m2 = np.zeros((m, 0), dtype=np.float64)
        if not frame.height:
            return
        codes = self.book.encode(frame["entity_id"].cast(pl.String).to_list())
        self._fit()
        metric = frame["metric"].cast(pl.String).to_list()
        for i, name in enumerate(self.metrics):
            rows = np.flatnonzero(np.array([x == name for x in metric], dtype=np.bool_))
            self.n[i][codes[rows]] = frame["n"].to_numpy()[rows]
            self.mean[i][codes[rows]] = frame["mean"].cast(pl.Float64).to_numpy()[rows]
            self.m2[i][codes[rows]] = frame["m2"].cast(pl.Float64).to_numpy()[rows]


class CodedHourMask:
    """`common.HourMask` in arrays: per entity code, a 24-bit mask of the hours of day it
    was active in and when it was first seen; persisted as the same ``(key, hours, since)``
    table."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.hours = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)

    def _fit(self) -> None:
        self.hours = grow(self.hours, len(self.book), 0)
        self.since = grow(self.since, len(self.book), NO_TIME)

    def seen(self, codes: I64, hours: I64) -> tuple[B, I64]:
        """Per row: was the entity active at that hour before (`learn`), and since when
        (`NO_TIME` for an entity never seen)."""
        self._fit()
        return (self.hours[codes] >> hours) & 1 == 1, self.since[codes]

    def learn(self, codes: I64, hours: I64, times: I64) -> None:
        """Add the hours each entity shows; first-seen from ``times`` for new entities."""
        self._fit()
        np.bitwise_or.at(self.hours, codes, np.left_shift(1, hours))
        first = np.full(len(self.since), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, codes, times)
        new = (self.since == NO_TIME) & (first != np.iinfo(np.int64).max)
        self.since[new] = first[new]

    @property
    def state(self) -> pl.DataFrame:
        """``(key, hours, since)``, one row per entity seen."""
        self._fit()
        codes = np.flatnonzero(self.since[: len(self.book)] != NO_TIME)
        out = pl.DataFrame(
            [
                self.book.decode(codes).alias("key"),
                pl.Series("hours", self.hours[codes], dtype=pl.Int64),
                micros_series(self.since[codes], "since"),
            ]
        )
        return out.sort("key")

    def load_arrow(self, table: pa.Table) -> None:
        """Restore a checkpointed mask."""
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        self.hours = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        if frame.height:
            codes = self.book.encode(frame["key"].cast(pl.String).to_list())
            self._fit()
            self.hours[codes] = frame["hours"].cast(pl.Int64).to_numpy()
            self.since[codes] = to_micros(frame["since"])
