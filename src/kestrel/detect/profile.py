"""Entity profiles: what each entity normally looks like, learnt from every batch.

Why sums and counts rather than averages: a profile is folded from many batches (and, scaled
out, from many workers), so every field is kept in a form that merges exactly: counts and
sums add, first-seen takes the minimum, last-seen the maximum, sets unite. Averages, rates
and shares are derived only when a profile is shown (`describe`). One ``group_by`` per batch
builds the batch's partial profiles; no Python loop per event.

Two frames make the state: ``profiles`` (one row per entity, `PROFILE_SCHEMA`) and
``operations`` (one row per entity, service and operation with its first-seen time and call
count, `OPS_SCHEMA`). The pipeline keeps them in the store; detectors do not read them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from kestrel.detect.cloud.arrays import CodeBook, global_codes
from kestrel.detect.cloud.common import batch_columns, coded_column, distinct_sorted, string_codes
from kestrel.events import Batch

_TS = pl.Datetime("us", "UTC")
HOURS = [f"h{h:02d}" for h in range(24)]
_SUMS = ("events", "api_calls", "errors", "gpu_n", "gpu_sum", "mem_n", "mem_sum", "power_n",
         "power_sum", *HOURS)  # fmt: skip
PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "entity_id": pl.String(), "entity_type": pl.String(), "provider": pl.String(),
    "first_seen": _TS, "last_seen": _TS, "api_first": _TS, "api_last": _TS,
    **{name: pl.Float64() if name.endswith("_sum") else pl.Int64() for name in _SUMS},
    "regions": pl.List(pl.String()), "instance_types": pl.List(pl.String()),
}  # fmt: skip
OPS_SCHEMA: dict[str, pl.DataType] = {
    "entity_id": pl.String(), "service": pl.String(), "operation": pl.String(),
    "first_seen": _TS, "calls": pl.Int64(),
}  # fmt: skip
_COLUMNS = ("entity_id", "entity_type", "time", "class", "cloud_provider", "source",
            "cloud_region", "cloud_service", "cloud_operation", "cloud_error_code",
            "metric_name", "metric_value", "instance_type")  # fmt: skip
# string columns the fold groups by (as codes, `EntityProfiler`) and the others it reads
_CODED = ("entity_id", "cloud_region", "instance_type", "cloud_service", "cloud_operation")
_PLAIN = tuple(c for c in _COLUMNS if c not in _CODED)
_METRICS = (("gpu", "gpu_util"), ("mem", "mem_util"), ("power", "power_watts"))
_API = pl.col("class").is_in(["api_activity", "auth"]) & pl.col("cloud_operation").is_not_null()
# the thread that folds pending events while the detectors read the next batches (one for
# every profiler: folds of one profiler must run in order, and two cores are the norm)
_FOLDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kestrel-profile-fold")
_API_CODED = pl.col("class").is_in(["api_activity", "auth"]) & (pl.col("_cloud_operation") >= 0)


class EntityProfiler:
    """Folds batches into per-entity profiles (``learn``); state as Arrow tables.

    Profiles merge exactly for any split of the events, and no detector reads them while a
    run goes on, so ``learn`` only keeps the batch's few profiled columns and folds them in
    ``flush_rows`` events at a time (and whenever the profiles are read: ``profiles``,
    ``operations``, ``state``). One group_by over many batches costs far less than one per
    hourly batch, each followed by a merge over every entity known so far. A fold that
    ``learn`` starts runs on a thread of its own while the batches go on (the other core
    does the fold); reading the profiles waits for it.
    """

    name = "profiles"

    def __init__(self, flush_rows: int = 500_000) -> None:
        self.flush_rows = flush_rows
        self._profiles = pl.DataFrame(schema=PROFILE_SCHEMA)
        self._operations = pl.DataFrame(schema=OPS_SCHEMA)
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        # integer codes of the string columns the fold groups by: assigned per batch from
        # the batch's dictionary-encoded columns (shared with the detectors), so the fold
        # never hashes the strings of every event
        self._books = {name: CodeBook() for name in _CODED}
        self._folds: list[Future[None]] = []  # folds handed to the fold thread, in order

    def learn(self, batch: Batch) -> None:
        """Add what ``batch`` shows about each entity it names."""
        entity = coded_column(batch, "entity_id")
        rows = np.flatnonzero(entity.codes >= 0)
        if not len(rows):
            return
        every = len(rows) == batch.num_rows
        picked = None if every else rows  # no gather when every row names an entity
        codes = {
            f"_{name}": global_codes(coded_column(batch, name), self._books[name], picked)
            for name in _CODED
        }
        plain = batch_columns(batch, _PLAIN)
        events = (plain if every else plain[rows]).with_columns(
            pl.Series(name, values) for name, values in codes.items()
        )
        self._pending.append(events)
        self._pending_rows += events.height
        if self._pending_rows >= self.flush_rows:
            self._fold_pending(wait=False)

    def flush(self) -> None:
        """Fold the events learnt since the last flush into the profiles (and wait for the
        folds under way)."""
        self._fold_pending(wait=True)

    def _fold_pending(self, wait: bool) -> None:
        """Fold the pending events: on the fold thread (`_FOLDS`, one worker: folds run in
        the order handed over) while batches keep coming, or here, after the folds under
        way, when ``wait``. A fold reads only what it is handed (the events and the code
        books' values as of now), so the detectors go on in parallel on the other core:
        NumPy, Arrow and Polars release the GIL for their passes."""
        job = None
        if self._pending:
            events = pl.concat(self._pending, rechunk=False)
            values = {name: book.decode(np.arange(len(book))) for name, book in self._books.items()}
            job = events, values
            self._pending, self._pending_rows = [], 0
        if not wait:
            if job is not None:
                self._folds.append(_FOLDS.submit(self._fold, *job))
            return
        while self._folds:
            self._folds.pop(0).result()
        if job is not None:
            self._fold(*job)

    def _fold(self, events: pl.DataFrame, values: dict[str, pl.Series]) -> None:
        """Fold ``events`` (codes into ``values``, by column) into the profiles."""
        e = events["_entity_id"].to_numpy()
        present = np.flatnonzero(np.bincount(e))
        dense = np.full(len(values["entity_id"]), -1, dtype=np.int64)
        dense[present] = np.arange(len(present))
        codes, entities = dense[e], values["entity_id"].gather(present)

        def coded(name: str) -> tuple[npt.NDArray[np.int64], pl.Series]:
            return events[f"_{name}"].to_numpy(), values[name]

        api = events.select(_API_CODED.fill_null(False)).to_series().to_numpy()
        part = _coded_profiles(
            events, codes, entities, coded("cloud_region"), coded("instance_type"), api
        )
        self._profiles = _merged(self._profiles, part, merge_profiles)
        o, operations = coded("cloud_operation")
        service = _service_codes(*coded("cloud_service"), api)
        time = events["time"].filter(pl.Series(api))
        ops = _coded_operations(codes[api], entities, service, operations, o[api], time)
        self._operations = _merged(self._operations, ops, merge_operations)

    @property
    def profiles(self) -> pl.DataFrame:
        """One row per entity (`PROFILE_SCHEMA`), everything learnt included."""
        self.flush()
        return self._profiles

    @property
    def operations(self) -> pl.DataFrame:
        """One row per entity, service and operation (`OPS_SCHEMA`)."""
        self.flush()
        return self._operations

    def state(self) -> dict[str, pa.Table]:
        """Both frames as Arrow tables, for the pipeline to keep."""
        return {"profiles": self.profiles.to_arrow(), "operations": self.operations.to_arrow()}

    def load_state(self, tables: dict[str, pa.Table]) -> None:
        """Restore what `state` returned (it replaces what was learnt before)."""
        self.flush()
        if "profiles" in tables:
            self._profiles = _cast(tables["profiles"], PROFILE_SCHEMA)
        if "operations" in tables:
            self._operations = _cast(tables["operations"], OPS_SCHEMA)


def _merged(
    left: pl.DataFrame,
    right: pl.DataFrame,
    merge: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame],
) -> pl.DataFrame:
    """``merge(left, right)``, or ``right`` itself when nothing was learnt before: a fold's
    partial frame has one row per key, sets sorted and distinct, in `PROFILE_SCHEMA` /
    `OPS_SCHEMA`, which is what the merge would return (30-45 ms of group_by spared on
    the first fold)."""
    return right if left.is_empty() else merge(left, right)


def _cast(table: pa.Table, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(list(schema)).cast(schema) if frame.height else pl.DataFrame(schema=schema)  # type: ignore[arg-type]


def _frame(batch: Batch) -> pl.DataFrame:
    """The profiled columns of ``batch``, strings as they are (the frame `batch_profiles`
    and `batch_operations` take; the profiler itself keeps codes)."""
    return batch_columns(batch, _COLUMNS).filter(pl.col("entity_id").is_not_null())


def batch_profiles(events: pl.DataFrame) -> pl.DataFrame:
    """One partial profile per entity of ``events`` (`PROFILE_SCHEMA`): the entity-wide
    fields, the hour histogram (UTC) and the GPU metrics' counts and sums.

    Why integer codes and NumPy: the entity column is dictionary-encoded once, and every
    field is then a ``bincount`` (counts, sums, the 24-bin hour histogram as one
    ``bincount`` over ``code * 24 + hour``), a ``minimum.at`` / ``maximum.at`` (spans, first
    rows) or a distinct (code, value) pair set (regions, instance types), each one pass over
    integer arrays. A Polars group_by with these ~40 aggregates over the entity strings cost
    about 4x more CPU. The fields are those of `reference_profiles` (the test compares them)."""
    codes, entities = string_codes(events["entity_id"])
    regions = string_codes(events["cloud_region"])
    types = string_codes(events["instance_type"])
    return _coded_profiles(events, codes, entities, regions, types)


def _coded_profiles(
    events: pl.DataFrame,
    codes: npt.NDArray[np.int64],
    entities: pl.Series,
    regions: tuple[npt.NDArray[np.int64], pl.Series],
    types: tuple[npt.NDArray[np.int64], pl.Series],
    is_api: pl.Expr | npt.NDArray[np.bool_] = _API,
) -> pl.DataFrame:
    """`batch_profiles` from integer codes: each event's entity code (``0..k-1``, the
    index into ``entities``) and its region and instance type codes (-1 for null) with the
    values they index. ``is_api``: what makes an event an API call (`_API`), or which rows
    are (computed once by the caller, `EntityProfiler.flush`)."""
    n = events.height
    k = len(entities)
    api = (
        events.select(is_api.fill_null(False)).to_series().to_numpy()
        if isinstance(is_api, pl.Expr)
        else is_api
    )
    marked = events.select(
        pl.col("time").dt.epoch("us").alias("t"),
        pl.coalesce("cloud_provider", "source").alias("provider"),
    )
    t = marked["t"].to_numpy()
    err = api & events["cloud_error_code"].is_not_null().to_numpy()
    out: dict[str, Any] = {
        "entity_id": entities,
        "entity_type": _first(events["entity_type"], codes, k),
        "provider": _first(marked["provider"], codes, k),
        "first_seen": _span(codes, t, k, np.minimum),
        "last_seen": _span(codes, t, k, np.maximum),
        "api_first": _span(codes[api], t[api], k, np.minimum),
        "api_last": _span(codes[api], t[api], k, np.maximum),
        "events": np.bincount(codes, minlength=k),
        "api_calls": np.bincount(codes[api], minlength=k),
        "errors": np.bincount(codes[err], minlength=k),
    }
    value = events["metric_value"].fill_null(0.0).to_numpy()
    has_value = events["metric_value"].is_not_null().to_numpy()
    for key, name in _METRICS:
        is_metric = (events["metric_name"] == name).fill_null(False).to_numpy()
        out[f"{key}_n"] = np.bincount(codes[is_metric & has_value], minlength=k)
        out[f"{key}_sum"] = np.bincount(codes[is_metric], value[is_metric], minlength=k)
    hours = np.bincount(codes * 24 + _utc_hour(events, t), minlength=k * 24)
    out.update(zip(HOURS, hours.reshape(k, 24).T, strict=True))
    out["regions"] = _sets(*regions, codes, k)
    out["instance_types"] = _sets(*types, codes, k)
    frame = pl.DataFrame(out) if n else pl.DataFrame(schema=PROFILE_SCHEMA)
    return frame.select(list(PROFILE_SCHEMA)).cast(PROFILE_SCHEMA)  # type: ignore[arg-type]


def _utc_hour(events: pl.DataFrame, t: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The UTC hour of each event from its microsecond times ``t`` (floor division: what
    Polars' ``dt.hour`` gives for a UTC time, ~4x less CPU); Polars' ``dt.hour`` when a
    time is null or the column is not UTC."""
    if t.dtype == np.int64 and events.schema["time"] == pl.Datetime("us", "UTC"):
        return t // 3_600_000_000 % 24
    return events["time"].dt.hour().cast(pl.Int64).to_numpy()


def reference_profiles(events: pl.DataFrame) -> pl.DataFrame:
    """`batch_profiles` as one plain Polars group_by over the entity strings: the
    straightforward definition of every field, kept as the reference the tests compare
    the integer-code path with."""
    api = pl.col("time").filter(pl.col("_api"))
    value = pl.col("metric_value")
    metrics = []
    for key, name in _METRICS:
        is_metric = pl.col("metric_name") == name
        metrics += [
            (is_metric & value.is_not_null()).sum().alias(f"{key}_n"),
            value.filter(is_metric).sum().alias(f"{key}_sum"),
        ]
    aggs = [
        pl.col("entity_type").drop_nulls().first(),
        pl.coalesce("cloud_provider", "source").drop_nulls().first().alias("provider"),
        pl.col("time").min().alias("first_seen"), pl.col("time").max().alias("last_seen"),
        api.min().alias("api_first"), api.max().alias("api_last"),
        pl.len().alias("events"), pl.col("_api").sum().alias("api_calls"),
        (pl.col("_api") & pl.col("cloud_error_code").is_not_null()).sum().alias("errors"),
        *metrics,
        *[(pl.col("_hour") == h).sum().alias(name) for h, name in enumerate(HOURS)],
        pl.col("cloud_region").drop_nulls().unique().sort().alias("regions"),
        pl.col("instance_type").drop_nulls().unique().sort().alias("instance_types"),
    ]  # fmt: skip
    marked = events.with_columns(_API.alias("_api"), pl.col("time").dt.hour().alias("_hour"))
    out = marked.group_by("entity_id").agg(aggs)
    return out.select(list(PROFILE_SCHEMA)).fill_null(0).cast(PROFILE_SCHEMA)  # type: ignore[arg-type]


def batch_operations(events: pl.DataFrame) -> pl.DataFrame:
    """Per entity, service and operation: first seen and calls (`OPS_SCHEMA`). The three
    string columns are dictionary-encoded and combined into one integer key, so the
    group_by hashes one integer per call instead of three strings."""
    calls = events.filter(_API).with_columns(pl.col("cloud_service").fill_null(""))
    if calls.is_empty():
        return pl.DataFrame(schema=OPS_SCHEMA)
    e, entities = string_codes(calls["entity_id"])
    s, services = string_codes(calls["cloud_service"])
    o, operations = string_codes(calls["cloud_operation"])
    return _coded_operations(e, entities, (s, services), operations, o, calls["time"])


def _coded_operations(
    e: npt.NDArray[np.int64],
    entities: pl.Series,
    service: tuple[npt.NDArray[np.int64], pl.Series],
    operations: pl.Series,
    o: npt.NDArray[np.int64],
    time: pl.Series,
) -> pl.DataFrame:
    """`batch_operations` from integer codes of the calls' entity, service and operation
    (indices into ``entities``, the services' values and ``operations``; none null)."""
    if not len(e):
        return pl.DataFrame(schema=OPS_SCHEMA)
    s, services = service
    key = (e * len(services) + s) * len(operations) + o
    keyed = pl.DataFrame({"key": key, "time": time})
    grouped = keyed.group_by("key").agg(pl.col("time").min().alias("first_seen"), pl.len())
    key = grouped["key"].to_numpy()
    o = key % len(operations)
    s = key // len(operations) % len(services)
    e = key // len(operations) // len(services)
    return pl.DataFrame(
        {
            "entity_id": entities.gather(e),
            "service": services.gather(s),
            "operation": operations.gather(o),
            "first_seen": grouped["first_seen"],
            "calls": grouped["len"],
        }
    ).cast(OPS_SCHEMA)  # type: ignore[arg-type]


def _service_codes(
    codes: npt.NDArray[np.int64], values: pl.Series, api: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], pl.Series]:
    """The calls' service codes, a null service as the value ``""`` (as
    `batch_operations` fills it)."""
    s = codes[api]
    if (s < 0).any():
        values = values.extend_constant("", 1)
        s = np.where(s < 0, len(values) - 1, s)
    return s, values


def _first(values: pl.Series, codes: npt.NDArray[np.int64], k: int) -> pl.Series:
    """Per code: the value of its first row where ``values`` is not null (null if none)."""
    rows = np.flatnonzero(values.is_not_null().to_numpy())
    first = np.full(k, len(values), dtype=np.int64)
    np.minimum.at(first, codes[rows], rows)
    return values.extend_constant(None, 1).gather(first)


def _span(codes: npt.NDArray[np.int64], t: npt.NDArray[np.int64], k: int,
          op: np.ufunc) -> pl.Series:  # fmt: skip
    """Per code: the min / max (``op``) of the microsecond times ``t``; null if none."""
    none = np.iinfo(np.int64).max if op is np.minimum else np.iinfo(np.int64).min
    out = np.full(k, none, dtype=np.int64)
    op.at(out, codes, t)
    series = pl.Series(out).set(pl.Series(out == none), None)
    return series.cast(pl.Datetime("us", "UTC"))


def _sets(vcodes: npt.NDArray[np.int64], distinct: pl.Series, codes: npt.NDArray[np.int64],
          k: int) -> pl.Series:  # fmt: skip
    """Per code: its distinct non-null values (``vcodes`` index ``distinct``; -1 for a
    null), sorted, as a list (empty if none)."""
    rows = np.flatnonzero(vcodes >= 0)
    if not len(rows):
        return pl.Series([[] for _ in range(k)], dtype=pl.List(pl.String))
    vcodes = vcodes[rows]
    order = distinct.arg_sort().to_numpy()
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct))
    width = len(distinct)
    pairs = codes[rows] * width + rank[vcodes]
    if k * width <= 4 * len(rows) + 1024:  # a presence table is cheaper than a sort
        pairs = np.flatnonzero(np.bincount(pairs, minlength=k * width))
    else:
        pairs = distinct_sorted(pairs)
    owner, value = pairs // width, pairs % width
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=k))])
    flat = distinct.gather(order).gather(value).to_arrow().cast(pa.large_string())
    lists = pa.LargeListArray.from_arrays(offsets.astype(np.int64), flat)
    return pl.Series(lists).cast(pl.List(pl.String))


def merge_profiles(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Exact merge of two profile frames: sums add, spans widen, sets unite."""
    both = pl.concat([left, right])
    return (
        both.group_by("entity_id", maintain_order=True)
        .agg(
            pl.col("entity_type", "provider").drop_nulls().first(),
            pl.col("first_seen", "api_first").min(), pl.col("last_seen", "api_last").max(),
            *[pl.col(name).sum() for name in _SUMS],
            pl.col("regions", "instance_types")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort(),
        )
        .select(list(PROFILE_SCHEMA))
        .cast(PROFILE_SCHEMA)  # type: ignore[arg-type]
    )  # fmt: skip


def merge_operations(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Exact merge of two operation frames: earliest first-seen, calls added."""
    keys = ["entity_id", "service", "operation"]
    return (
        pl.concat([left, right])
        .group_by(keys, maintain_order=True)
        .agg(pl.col("first_seen").min(), pl.col("calls").sum())
        .cast(OPS_SCHEMA)  # type: ignore[arg-type]
    )


def describe(row: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A profile row (and its operations) as shown to people: averages, calls per hour,
    error rate, the active-hours histogram (UTC) and services with first-seen times."""
    return {
        "id": row["entity_id"], "type": row["entity_type"], "provider": row["provider"],
        "first_seen": _iso(row["first_seen"]), "last_seen": _iso(row["last_seen"]),
        "events": row["events"], "regions": list(row["regions"] or []),
        "instance_types": list(row["instance_types"] or []),
        "gpu_util_avg": _avg(row, "gpu"), "mem_util_avg": _avg(row, "mem"),
        "power_watts_avg": _avg(row, "power"), "api_calls": row["api_calls"],
        "api_calls_per_hour": _per_hour(row), "error_rate": _share(row["errors"], row["api_calls"]),
        "active_hours": [row[h] for h in HOURS],
        "services": _services(operations),
    }  # fmt: skip


def _avg(row: dict[str, Any], key: str) -> float | None:
    n = row[f"{key}_n"]
    return round(float(row[f"{key}_sum"]) / n, 2) if n else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _per_hour(row: dict[str, Any]) -> float | None:
    """Calls per hour over the span the entity made calls in (an hour at least)."""
    if not row["api_calls"]:
        return None
    span: float = (row["api_last"] - row["api_first"]).total_seconds() / 3600
    return round(float(row["api_calls"]) / max(1.0, span), 2)


def _services(operations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for op in sorted(operations, key=lambda o: (o["service"], o["first_seen"])):
        svc = out.setdefault(
            op["service"], {"first_seen": _iso(op["first_seen"]), "operations": {}}
        )
        svc["operations"][op["operation"]] = {
            "first_seen": _iso(op["first_seen"]),
            "calls": op["calls"],
        }
    return out


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
