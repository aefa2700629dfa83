"""Helpers the cloud detectors share: batch → Polars frame, evidence ids, hours, findings.

Everything here works on whole frames; only the few rows that become findings turn into
Python objects (`finding_rows`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect.cloud.arrays import CodeBook, Coded, encode_column
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal
from kestrel.findings.severity import severity_for

# Where a source keeps the record's own id inside ``raw`` (JSON path).
SOURCE_ID_PATHS: dict[str, str] = {"cloudtrail": "$.eventID", "agent": "$.event_id"}
DENIED = r"(?i)(AccessDenied|Unauthorized|Forbidden)"


def frame(batch: Batch, columns: Sequence[str], where: pl.Expr | None = None) -> pl.DataFrame:
    """The named columns of ``batch`` (plus ``event_id``, ``time``, ``raw``, ``source``)
    as a Polars frame, filtered by ``where``; extra input columns are ignored."""
    names = list(dict.fromkeys(["event_id", "time", "source", "raw", *columns]))
    out = batch_columns(batch, names)
    return out if where is None else out.filter(where)


class _BatchColumns:
    """The Polars columns of the latest batch, converted from Arrow once: every cloud
    detector and the profiler read the same batch, so each column is converted once per
    batch, not once per reader. Holds only the latest batch (by identity)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch: Batch | None = None
        self._columns: dict[str, pl.Series] = {}
        self._coded: dict[str, Coded] = {}

    def coded(self, batch: Batch, name: str) -> Coded:
        with self._lock:
            if self._batch is not batch:
                self._batch, self._columns, self._coded = batch, {}, {}
            if name not in self._coded:
                coded = encode_column(batch.column(name))
                intern = _INTERN.setdefault(name, CodeBook())
                self._coded[name] = Coded(
                    coded.codes, coded.values, intern.encode(coded.values), intern
                )
            return self._coded[name]

    def get(self, batch: Batch, names: Sequence[str]) -> pl.DataFrame:
        with self._lock:
            if self._batch is not batch:
                self._batch, self._columns, self._coded = batch, {}, {}
            cols = self._columns
            missing = [n for n in names if n not in cols]
            if missing:  # (``column_names`` builds a new list on every call)
                have = set(batch.column_names)
                todo = [n for n in missing if n in have]
            else:
                todo = []
            if todo:
                converted = pl.from_arrow(batch.select(todo))
                assert isinstance(converted, pl.DataFrame)
                cols.update(zip(todo, converted.get_columns(), strict=True))
            height = batch.num_rows
            return pl.DataFrame(
                [cols[n] if n in cols else pl.repeat(None, height, dtype=pl.String, eager=True)
                 .alias(n) for n in names]
            )  # fmt: skip

    def forget(self) -> None:
        with self._lock:
            self._batch, self._columns, self._coded = None, {}, {}


_COLUMNS = _BatchColumns()
# per column name: every value `coded_column` has seen in this process, interned (see
# `arrays.Coded`); it grows as the detectors' own code books do
_INTERN: dict[str, CodeBook] = {}


def forget_batch_columns() -> None:
    """Drop the converted columns of the latest batch (the runner calls it after a run, so
    a long-lived process does not keep its last batch in memory)."""
    _COLUMNS.forget()


def batch_columns(batch: Batch, names: Sequence[str]) -> pl.DataFrame:
    """The named columns of ``batch`` as a Polars frame (a column the batch lacks is all
    null strings), converted once per batch and shared by every reader of that batch."""
    return _COLUMNS.get(batch, names)


def coded_column(batch: Batch, name: str) -> Coded:
    """Column ``name`` of ``batch`` dictionary-encoded (`arrays.encode_column`), once per
    batch and shared by every reader of that batch."""
    return _COLUMNS.coded(batch, name)


def source_id() -> pl.Expr:
    """The record's own id in its source, from ``raw``; ``""`` where the source has none."""
    expr: pl.Expr = pl.lit("")
    for src, path in SOURCE_ID_PATHS.items():
        found = pl.col("raw").str.json_path_match(path).fill_null("")
        expr = pl.when(pl.col("source") == src).then(found).otherwise(expr)
    return expr.alias("source_id")


def local_hour(tz: str) -> pl.Expr:
    """Hour of day of ``time`` in timezone ``tz``."""
    return pl.col("time").dt.convert_time_zone(tz).dt.hour().cast(pl.Int32)


def off_hours(hour: pl.Expr, start: int, end: int) -> pl.Expr:
    """True for hours before ``start`` or at / after ``end`` (default night: <6 or >=22)."""
    return (hour < start) | (hour >= end)


def evidence_by(rows: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Per ``keys``: the event ids, source ids, first and last time of ``rows``."""
    return (
        rows.with_columns(source_id())
        .sort("time")
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("event_id").alias("evidence"),
            pl.col("source_id").alias("source_ids"),
            pl.col("time").min().alias("first_seen"),
            pl.col("time").max().alias("last_seen"),
        )
    )


def make_finding(
    detector: str,
    entity: Entity,
    row: dict[str, Any],
    signals: Sequence[Signal],
    techniques: Iterable[str],
    title: str,
    window: timedelta | None = None,
) -> Finding:
    """A finding from one evidence row (`evidence_by`) and its signals."""
    first: datetime = row["first_seen"]
    last: datetime = row["last_seen"]
    return Finding(
        detector=detector,
        entity=entity,
        first_seen=first,
        last_seen=last,
        severity=severity_for(signals),
        signals=tuple(signals),
        title=title,
        techniques=tuple(dict.fromkeys(techniques)),
        evidence=tuple(row["evidence"]),
        source_ids=tuple(row["source_ids"]),
        window_seconds=int(window.total_seconds()) if window else None,
    )


def string_codes(values: pl.Series) -> tuple[npt.NDArray[np.int64], pl.Series]:
    """Dense integer codes of a string column (each row's index into the distinct
    non-null values, by Arrow's ``dictionary_encode``; -1 for a null) and those values."""
    encoded = pc.dictionary_encode(values.to_arrow())
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    indices = pc.fill_null(encoded.indices, -1)
    codes = indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = pl.Series(values.name, encoded.dictionary, dtype=pl.String)
    return codes, distinct


def distinct_sorted(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The distinct values, sorted: one sort and a neighbour compare (``np.unique`` took
    430 ms on 500,000 int64 keys here, with NumPy 2.4, where this takes a few ms)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


class StatefulDetector:
    """State handling shared by the cloud detectors: named Polars frames that the pipeline
    checkpoints as Arrow tables (`state` / `load_state`), and `clone` for a fresh copy with
    the same configuration (river's ``clone``)."""

    name: ClassVar[str]
    _state_names: tuple[str, ...] = ()

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for ``batch`` (each detector implements it; declared here so that every
        subclass type-checks as a `kestrel.detect.Detector`)."""
        raise NotImplementedError

    def state(self) -> dict[str, pa.Table]:
        """The learnt state as Arrow tables, by name, for the pipeline to checkpoint."""
        return {name: self._frame(name).to_arrow() for name in self._state_names}

    def load_state(self, tables: dict[str, pa.Table]) -> None:
        """Restore what `state` returned; names not given keep their current value."""
        for name in self._state_names:
            if name in tables:
                self._set_frame(name, tables[name])

    def _frame(self, name: str) -> pl.DataFrame:
        value = getattr(self, f"_{name}")
        return value.state if hasattr(value, "state") else value  # type: ignore[no-any-return]

    def _set_frame(self, name: str, table: pa.Table) -> None:
        value = getattr(self, f"_{name}")
        if hasattr(value, "load_arrow"):
            value.load_arrow(table)
            return
        loaded = pl.from_arrow(table)
        assert isinstance(loaded, pl.DataFrame)
        setattr(self, f"_{name}", loaded.cast(dict(value.schema)) if loaded.height else value)

    def clone(self) -> Self:
        """A fresh detector with the same configuration and no learnt state."""
        return type(self)(**self.params())

    def params(self) -> dict[str, Any]:
        """The constructor arguments (the configuration)."""
        return copy.deepcopy(self._params)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class HourMask:
    """Which hours of the day each key has been active in: a 24-bit mask per key, so
    "off-hours" can mean "at an hour this entity never works" instead of a fixed clock.
    ``since`` is when the key was first seen: a mask younger than a day knows little."""

    SCHEMA: ClassVar[dict[str, pl.DataType]] = {
        "key": pl.String(),
        "hours": pl.Int64(),
        "since": pl.Datetime("us", "UTC"),
    }

    def __init__(self) -> None:
        self.state = pl.DataFrame(schema=self.SCHEMA)

    def seen(self, frame: pl.DataFrame, key: str, hour: str = "hour") -> pl.DataFrame:
        """``frame`` with ``hour_seen`` (was ``key`` active at ``hour`` before this batch)
        and ``known_since`` (null for a key never seen)."""
        out = frame.join(self.state, left_on=key, right_on="key", how="left")
        bit = pl.lit(2, pl.Int64).pow(pl.col(hour).cast(pl.Int64))
        return out.with_columns(
            ((pl.col("hours").fill_null(0) // bit) % 2 == 1).alias("hour_seen"),
            pl.col("since").alias("known_since"),
        ).drop("hours", "since")

    def learn(self, frame: pl.DataFrame, key: str, hour: str = "hour", time: str = "time") -> None:
        """Add the hours ``frame`` shows for each key."""
        bit = pl.lit(2, pl.Int64).pow(pl.col(hour).cast(pl.Int64))
        # the sum of the distinct bits is their OR; Polars' bitwise_or aggregation gives the
        # same and is faster on one 24-hour batch, but slower on the runner's hourly ones
        new = frame.group_by(pl.col(key).alias("key")).agg(
            bit.unique().sum().alias("new"), pl.col(time).min().alias("first")
        )
        both = new.join(self.state, on="key", how="full", coalesce=True)
        self.state = both.select(
            "key",
            (pl.col("hours").fill_null(0) | pl.col("new").fill_null(0)).alias("hours"),
            pl.coalesce("since", "first").dt.cast_time_unit("us").alias("since"),
        )

    def load_arrow(self, table: pa.Table) -> None:
        """Restore a checkpointed mask."""
        loaded = pl.from_arrow(table)
        assert isinstance(loaded, pl.DataFrame)
        self.state = loaded.cast(self.SCHEMA) if loaded.height else self.state  # type: ignore[arg-type]


RUN_SCHEMA: dict[str, pl.DataType] = {
    "entity_id": pl.String(),
    "run_end": pl.Datetime("us", "UTC"),
    "run_len": pl.Int64(),
}


def high_runs(
    windows: pl.DataFrame, runs: pl.DataFrame, step: timedelta, mark: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``windows`` with ``run``: how many consecutive windows (this one included) of the
    entity had every sample at or above ``mark`` (0 when this one did not), carried across
    batches by ``runs`` (``RUN_SCHEMA``: the entity's last high window and its run length).
    Returns the windows and the updated ``runs``.

    Only the high windows are ranked (few, beside every window of every GPU): a high window
    starts a streak unless the entity's previous high window is exactly ``step`` before it,
    which is the same as "the previous window of the entity was high and adjacent"."""
    is_high = pl.col("util_min").fill_null(0) >= mark
    ws = pl.col("window_start")
    hi = windows.filter(is_high).select(_RUN_KEYS).sort(_RUN_KEYS)
    same = pl.col("entity_id") == pl.col("entity_id").shift(1)
    start = (~same | ((ws - ws.shift(1)) != step)).fill_null(True)
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    hi = hi.with_columns(
        (idx - pl.when(start).then(idx).forward_fill() + 1).alias("_pos"),
        pl.when(start).then(ws).forward_fill().alias("_head"),
    ).join(runs, on="entity_id", how="left")
    carry = pl.when(pl.col("_head") - step == pl.col("run_end")).then(pl.col("run_len"))
    hi = hi.select(*_RUN_KEYS, (pl.col("_pos") + carry.otherwise(0)).alias("run"))
    out = windows.join(hi, on=_RUN_KEYS, how="left").with_columns(pl.col("run").fill_null(0))
    # the run state of each entity in the batch: its last window, if that one was high
    last = windows.group_by("entity_id").agg(ws.max())
    new = hi.join(last, on=_RUN_KEYS, how="semi").select(
        "entity_id", ws.dt.cast_time_unit("us").alias("run_end"), pl.col("run").alias("run_len")
    )
    kept = runs.join(last, on="entity_id", how="anti")
    return out, pl.concat([kept, new.cast(RUN_SCHEMA)])  # type: ignore[arg-type]


_RUN_KEYS = ["entity_id", "window_start"]
