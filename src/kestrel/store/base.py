"""The storage interface every stage above it uses; DuckDB fills it today, PostgreSQL later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from kestrel.events import Batch

Span = tuple[datetime, datetime]
"""A time range, both ends included: where `Store.known_event_ids` looks."""


def time_span(times: pa.Array | pa.ChunkedArray) -> Span | None:
    """The first and last of ``times`` (a batch's ``time`` column), or None when one is
    missing or there are none (then `Store.known_event_ids` searches the whole store)."""
    if len(times) == 0 or times.null_count:
        return None
    import pyarrow.compute as pc  # on first use: ~0.05 CPU-s of `kestrel hunt` start-up

    lo, hi = pc.min_max(times).values()
    return lo.as_py(), hi.as_py()


def unique_by_event_id(batch: Batch) -> Batch:
    """First occurrence of each event_id (a file may repeat a record byte for byte). Shared
    by the stores' appends and the API's intake, which all keep each id once."""
    import pyarrow.compute as pc  # on first use, as in `time_span`

    ids = batch.column("event_id")
    if pc.count_distinct(ids).as_py() == batch.num_rows:
        return batch
    first = (
        pa.table({"i": pa.array(range(batch.num_rows)), "id": ids})
        .group_by("id", use_threads=False)
        .aggregate([("i", "min")])
        .column("i_min")
    )
    return batch.take(first.take(pc.sort_indices(first)))


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: rows new to the store, and rows it already had (same event_id)."""

    stored: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of what the store holds, in the shape `kestrel stats --json` prints."""

    total: int
    by_source: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    rejected: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract: ``{"total", "by_source", "by_class", "rejected"}``."""
        return {"total": self.total, "by_source": self.by_source, "by_class": self.by_class,
                "rejected": self.rejected}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to fetch; every field optional, all given ones must hold."""

    start: datetime | None = None
    end: datetime | None = None
    classes: tuple[str, ...] = ()
    entity_id: str | None = None
    source: str | None = None
    limit: int | None = None


class Store(Protocol):
    """Append-only event store with idempotent appends (keyed by ``event_id``)."""

    dialect: str

    def append(self, batch: Batch) -> AppendResult:
        """Add the events not yet stored; duplicates (also within ``batch``) are counted."""
        ...

    def append_rejected(self, rejected: pa.Table) -> int:
        """Keep rejected records aside; the same rejection twice is kept once."""
        ...

    def known_event_ids(self, ids: pa.Array | pa.ChunkedArray, span: Span | None) -> pa.Array:
        """Which of ``ids`` the store already has, each once (a string array, any order).

        ``span`` is the time range of the rows the ids belong to (`time_span`): an event id
        hashes the record's canonical bytes and its time is read from those bytes, so a
        stored row with one of these ids lies within the span, and only those stored rows
        need to be looked at. None searches every stored row. The one place that answers
        "is this event new?" for appends, the API's per-request counts and broker intake.
        """
        ...

    def events(self, where: EventFilter) -> Batch:
        """Events matching ``where``, ordered by time."""
        ...

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL written in this store's ``dialect``; for hunts and the API."""
        ...

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        """Run a statement that returns no rows (the hunt session's temporary tables)."""
        ...

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` until `unregister` (hunt sources)."""
        ...

    def unregister(self, name: str) -> None:
        """Forget a table made queryable by `register`."""
        ...

    def stats(self) -> Stats:
        """Counts per source and class, and rejected records."""
        ...

    def rejected(self, limit: int = 100) -> pa.Table:
        """The rejected records with their position and reason (for `kestrel rejected`)."""
        ...

    def close(self) -> None:
        """Release the store (file locks, connections)."""
        ...
