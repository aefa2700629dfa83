"""Helpers the cloud detectors share: batch → Polars frame, evidence ids, hours, findings.

Everything here works on whole frames; only the few rows that become findings turn into
Python objects (`finding_rows`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import polars as pl
import pyarrow as pa

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
    present = [n for n in names if n in batch.column_names]
    out = pl.from_arrow(batch.select(present))
    assert isinstance(out, pl.DataFrame)
    for name in names:
        if name not in out.columns:
            out = out.with_columns(pl.lit(None, pl.String).alias(name))
    return out if where is None else out.filter(where)


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
    Returns the windows and the updated ``runs``."""
    high = pl.col("util_min").fill_null(0) >= mark
    prev = pl.col("window_start").shift(1).over("entity_id")
    prev_high = high.shift(1).over("entity_id").fill_null(False)
    starts = ~high | ~prev_high | ((pl.col("window_start") - prev) != step)
    w = windows.sort("entity_id", "window_start").with_columns(
        high.alias("_high"), starts.cum_sum().over("entity_id").alias("_streak")
    )
    w = w.with_columns(pl.int_range(1, pl.len() + 1).over("entity_id", "_streak").alias("_pos"))
    head = pl.col("window_start").min().over("entity_id", "_streak")
    carry = pl.when(head - step == pl.col("run_end")).then(pl.col("run_len")).otherwise(0)
    w = w.join(runs, on="entity_id", how="left").with_columns(
        pl.when(pl.col("_high")).then(pl.col("_pos") + carry).otherwise(0).alias("run")
    )
    last = w.group_by("entity_id").agg(pl.all().sort_by("window_start").last())
    new = last.filter(pl.col("_high")).select(
        "entity_id", pl.col("window_start").dt.cast_time_unit("us").alias("run_end"),
        pl.col("run").cast(pl.Int64).alias("run_len"),
    )  # fmt: skip
    kept = runs.join(last.select("entity_id"), on="entity_id", how="anti")
    out = w.drop("_high", "_streak", "_pos", "run_end", "run_len")
    return out, pl.concat([kept, new]).cast(RUN_SCHEMA)  # type: ignore[arg-type]
