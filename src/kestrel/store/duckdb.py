"""The embedded store: one DuckDB file (or ``:memory:``), no service to run.

Appends are idempotent without an index: the batch is made unique on ``event_id`` and
inserted with an anti-join against what is stored. Measured back to back on 600,000
CloudTrail events (bench/RESULTS.md, "Ingest"), a unique index with ``INSERT OR IGNORE``
made the appends 1.5x slower than the anti-join (54 s vs 37 s; a plain insert with no dedupe
took 42 s), and its per-batch cost did not stay lower as the store grew. DuckDB's zone maps
serve the time / class / entity filters without further indexes.

Which ids are stored already is `known_event_ids`, the one lookup that appends, the API's
per-request counts and broker intake share. It reads only the stored rows within the
batch's time span: an ``event_id`` hashes the record's canonical bytes and a reader derives
``time`` from those bytes, so two rows with one id have one time. The time filter is served
by zone maps (events arrive roughly in time order), so a lookup no longer probes every id in
the store: at 3,000,000 stored rows the anti-join of a 20,000-row batch took 500-760 ms
against the whole table and 14-17 ms within the span (bench/RESULTS.md, API). The span's
stored ids are matched in Arrow (a third of the CPU of a DuckDB semi-join for a
1,000-event request); a span holding very many stored rows is semi-joined in DuckDB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from kestrel.errors import StoreError
from kestrel.events import SCHEMA, Batch
from kestrel.store.base import (
    AppendResult,
    EventFilter,
    Span,
    Stats,
    time_span,
    unique_by_event_id,
)
from kestrel.store.tables import REJECTED_SCHEMA, events_ddl, rejected_ddl

if TYPE_CHECKING:
    from kestrel.store.id_index import IdIndex

SCHEMA_VERSION = 1
# The raw record is most of a row's bytes. zstd stores it 9x smaller than DuckDB's default
# string compression and appends 3x faster (measured on CloudTrail: bench/RESULTS.md).
_COLUMN_OPTIONS = {"raw": "USING COMPRESSION zstd"}
DUCKDB_MEMORY_LIMIT = os.environ.get("KESTREL_DUCKDB_MEMORY", "512MB")
SPAN_ROWS = 100_000  # stored rows of a span matched in Arrow, at most; past it: a semi-join
_IDS = "_kestrel_ids"


class DuckDBStore:
    """`Store` over DuckDB. ``path`` is a file (created with its folder) or ``:memory:``."""

    dialect = "duckdb"
    appends = 0  # `append`s done on this connection: see `insert_new`
    _stopped = False  # set by `interrupt`: this connection answers no further query

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(
                str(Path(self.path).expanduser()) if self.path != ":memory:" else ":memory:"
            )
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        # DuckDB's default buffer pool is 80 % of RAM; ingest must stay small beside readers.
        self._con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'").fetchall()
        # the id filter, shared with every `cursor`: none until `index_event_ids` (which
        # imports NumPy then, not at start-up: `kestrel hunt` starts without it)
        self._ids: list[IdIndex] = []
        self._migrate()

    def index_event_ids(self) -> None:
        """Keep the stored ids' keys in memory (`IdIndex`) from now on, so that
        `known_event_ids` asks DuckDB only about ids the filter may hold: the API server,
        whose every request checks its ids (a DuckDB query costs ~0.7 ms before it reads a
        row). Loads the stored ids once (8 bytes each in memory). Every insert into
        ``events`` goes through `_insert`, which adds its ids after the commit."""
        self._refuse_if_stopped()
        if self._ids:
            return
        from kestrel.store.id_index import IdIndex

        self._ids.append(IdIndex())
        cursor = self._con.cursor()
        try:
            self._ids[0].start(cursor.sql("SELECT event_id FROM events").to_arrow_reader(1 << 20))
        finally:
            cursor.close()

    def _migrate(self) -> None:
        for ddl in (
            events_ddl(options=_COLUMN_OPTIONS),
            rejected_ddl(),
            "CREATE TABLE IF NOT EXISTS kestrel_meta (key VARCHAR, value VARCHAR)",
        ):
            self._con.execute(ddl).fetchall()
        rows = self._con.execute(
            "SELECT value FROM kestrel_meta WHERE key = 'schema_version'"
        ).fetchall()
        found = rows[0] if rows else None
        if found is None:
            self._con.execute(
                "INSERT INTO kestrel_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            ).fetchall()
        elif int(found[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {found[0]}; this Kestrel "
                f"knows up to {SCHEMA_VERSION}: upgrade Kestrel"
            )

    def append(self, batch: Batch) -> AppendResult:
        import pyarrow.compute as pc  # here, not at the top: see `time_span`

        if batch.num_rows == 0:
            return AppendResult(0, 0)
        unique = unique_by_event_id(batch.select(SCHEMA.names).cast(SCHEMA))
        ids = unique.column("event_id")
        known = self.known_event_ids(ids, time_span(unique.column("time")))
        if len(known):
            unique = unique.filter(pc.invert(pc.is_in(ids, known)))
        if unique.num_rows == 0:
            return AppendResult(0, batch.num_rows)
        self._insert(unique)
        self.appends += 1
        return AppendResult(unique.num_rows, batch.num_rows - unique.num_rows)

    def insert_new(self, batch: Batch) -> None:
        """Insert rows the caller has checked: each ``event_id`` once in ``batch`` and none
        stored (the API's spool writer, whose requests checked their ids for their counts,
        against the store and against each other). `append` would look them up again.

        A caller that checked before another writer's `append` (a live scenario's) must
        check again: `appends` counts those, so it can tell."""
        if batch.num_rows:
            self._insert(batch.select(SCHEMA.names).cast(SCHEMA))

    def _insert(self, rows: pa.Table) -> None:
        """``INSERT`` the rows from one Arrow record batch. Why one: DuckDB scans each
        record batch of a registered table on its own thread, and on two threads the insert
        builds a row group per thread and merges them, which took 35-45 % more CPU per row
        than one thread (100,000-160,000 bench rows into the 86-column table, load 3-4:
        10.4-13.6 vs 6.6-7.7 us/row, bench/RESULTS.md, API). Combining the chunks copies the
        rows once; the merge copied them too."""
        self._con.register("_incoming", rows.combine_chunks())
        try:
            self._con.execute("INSERT INTO events SELECT * FROM _incoming").fetchall()
        finally:
            self._con.unregister("_incoming")
        for index in self._ids:  # committed (autocommit): now stored
            index.add(rows.column("event_id"))

    def known_event_ids(self, ids: pa.Array | pa.ChunkedArray, span: Span | None) -> pa.Array:
        self._refuse_if_stopped()
        if self._ids and self._ids[0].enabled and len(ids):  # ids the filter may hold
            maybe = self._ids[0].maybe_stored(ids)
            ids = ids.filter(pa.array(maybe)) if maybe.any() else ids.slice(0, 0)
        if len(ids) == 0:
            return pa.array([], pa.string())
        if span is not None:
            near = (
                self._con.sql(
                    f"SELECT event_id FROM events WHERE time >= ? AND time <= ? "
                    f"LIMIT {SPAN_ROWS + 1}",
                    params=list(span),
                )
                .to_arrow_table()
                .column(0)
            )
            if len(near) <= SPAN_ROWS:
                import pyarrow.compute as pc

                return pc.unique(near.filter(pc.is_in(near, ids)))
        where, params = ("time >= ? AND time <= ? AND ", list(span)) if span else ("", [])
        self._con.register(_IDS, pa.table({"event_id": ids}))
        try:
            found = self._con.sql(
                f"SELECT DISTINCT event_id FROM events WHERE {where}"
                f"event_id IN (SELECT event_id FROM {_IDS})",
                params=params or None,
            ).to_arrow_table()
        finally:
            self._con.unregister(_IDS)
        return found.column(0).combine_chunks()

    def append_rejected(self, rejected: pa.Table) -> int:
        if rejected.num_rows == 0:
            return 0
        self._con.register("_rejected", rejected.select(REJECTED_SCHEMA.names))
        try:
            return self._rows(
                "INSERT INTO rejected SELECT DISTINCT ON (reject_id) r.* FROM _rejected r "
                "ANTI JOIN rejected o ON o.reject_id = r.reject_id"
            )
        finally:
            self._con.unregister("_rejected")

    def events(self, where: EventFilter) -> Batch:
        sql, params = _filter_sql(where)
        return self._con.sql(sql, params=params).to_arrow_table().cast(SCHEMA)

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        self._refuse_if_stopped()
        return self._con.sql(sql, params=params or None).to_arrow_table()

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        self._refuse_if_stopped()
        self._con.execute(sql, params or []).fetchall()

    def query_batches(self, sql: str, rows: int = 65_536) -> pa.RecordBatchReader:
        """`query` a batch at a time (a hunt's DISP of a million rows streams its JSON)."""
        self._refuse_if_stopped()
        return self._con.sql(sql).to_arrow_reader(rows)

    def cursor(self) -> DuckDBStore:
        """Another connection to the same database, for a reader that must neither wait on
        nor hold up this one (a hunt beside intake): DuckDB runs its queries beside this
        connection's appends, each on its own snapshot; its temporary tables and registered
        views are its own. `close` it when done (the database stays open)."""
        other = object.__new__(DuckDBStore)
        other.path = self.path
        other._con = self._con.cursor()
        other._ids = self._ids
        return other

    def interrupt(self) -> None:
        """Stop the query running on this connection; it raises `duckdb.InterruptException`
        (safe to call from another thread; what the query wrote is rolled back). The
        connection then refuses every later `query` / `execute` the same way: a timer that
        fires between two queries (while the caller works in Python) must stop the next one,
        not be lost. Meant for a `cursor` that is closed after."""
        self._stopped = True
        self._con.interrupt()

    def _refuse_if_stopped(self) -> None:
        if self._stopped:
            raise duckdb.InterruptException("INTERRUPT Error: interrupted (time limit)")

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def unregister(self, name: str) -> None:
        self._con.unregister(name)

    def stats(self) -> Stats:
        by_source = dict(
            self._con.execute(
                "SELECT source, count(*) FROM events GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        by_class = dict(
            self._con.execute(
                'SELECT "class", count(*) FROM events GROUP BY 1 ORDER BY 1'
            ).fetchall()
        )
        return Stats(self._count("events"), by_source, by_class, self._count("rejected"))

    def rejected(self, limit: int = 100) -> pa.Table:
        """The rejected records, most recent files first (for `kestrel rejected`)."""
        return self.query("SELECT * FROM rejected ORDER BY path, record, line LIMIT ?", [limit])

    def close(self) -> None:
        self._con.close()

    def _count(self, table: str) -> int:
        return self._rows(f"SELECT count(*) FROM {table}")

    def _rows(self, sql: str, params: list[Any] | None = None) -> int:
        """Run a statement that answers one number (a count, or rows inserted)."""
        rows = self._con.execute(sql, params or []).fetchall()
        return int(rows[0][0]) if rows else 0


def _filter_sql(where: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for sql, value in (
        ("time >= ?", where.start),
        ("time < ?", where.end),
        ("entity_id = ?", where.entity_id),
        ("source = ?", where.source),
    ):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    if where.classes:
        clauses.append(f'"class" IN ({", ".join("?" for _ in where.classes)})')
        params.extend(where.classes)
    sql = "SELECT * FROM events"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY time, event_id"
    if where.limit is not None:
        sql += f" LIMIT {int(where.limit)}"
    return sql, params
