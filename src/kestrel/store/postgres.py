"""The shared store for the distributed deployment: PostgreSQL through psycopg 3.

Appends go in as one COPY per batch into a session-temporary staging table and from there
into ``events`` with ``ON CONFLICT (event_id) DO NOTHING``: the unique index makes appends
idempotent however many workers send the same batch, and the staging step lets PostgreSQL
count what was new. Reads of events come back over ``COPY ... TO STDOUT`` (`pgarrow`).

Statements from the layers above are written with ``?`` placeholders (DuckDB's style, the
one the `Store` protocol speaks); this module turns them into psycopg's ``%s``. The schema
is kept by numbered migrations in ``kestrel_migrations``, applied under an advisory lock so
that workers starting together do not race their ``CREATE TABLE``s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.errors import StoreError
from kestrel.events import SCHEMA, Batch
from kestrel.store import findings, management
from kestrel.store.base import AppendResult, EventFilter, Span, Stats, unique_by_event_id
from kestrel.store.duckdb import _filter_sql
from kestrel.store.pgarrow import create_sql, from_csv, rows_table, to_csv
from kestrel.store.tables import POSTGRES_TYPES, REJECTED_SCHEMA, events_ddl, rejected_ddl

_LOCK = 0x6B657374  # "kest": the advisory lock that serializes migrations
_STAGE = "_kestrel_incoming"

_EVENT_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id)",
    "CREATE INDEX IF NOT EXISTS events_time ON events (time)",
    'CREATE INDEX IF NOT EXISTS events_class_time ON events ("class", time)',
    "CREATE INDEX IF NOT EXISTS events_entity_time ON events (entity_id, time)",
    "CREATE INDEX IF NOT EXISTS events_source_time ON events (source, time)",
    "CREATE UNIQUE INDEX IF NOT EXISTS rejected_reject_id ON rejected (reject_id)",
)
_FINDING_INDEXES = (
    "CREATE INDEX IF NOT EXISTS findings_span ON findings (last_seen, first_seen)",
    "CREATE INDEX IF NOT EXISTS findings_finding_id ON findings (finding_id)",
    "CREATE INDEX IF NOT EXISTS findings_entity ON findings (entity_id)",
    "CREATE INDEX IF NOT EXISTS detector_state_detector ON detector_state (detector)",
)


def _v1(store: PostgresStore) -> None:
    store.execute(events_ddl(types=POSTGRES_TYPES))
    store.execute(rejected_ddl(types=POSTGRES_TYPES))
    for ddl in _EVENT_INDEXES:
        store.execute(ddl)


def _v2(store: PostgresStore) -> None:
    findings.ensure_tables(store)
    for ddl in _FINDING_INDEXES:
        store.execute(ddl)


def _v3(store: PostgresStore) -> None:
    management.ManagementStore(store)


def _v4(store: PostgresStore) -> None:
    # The distributed runner's bookkeeping: which messages a stage has committed (so a
    # redelivered one is acked without running twice) and how far each route has got.
    store.execute(
        "CREATE TABLE IF NOT EXISTS pipeline_done (message_id TEXT PRIMARY KEY, "
        "route TEXT, events INTEGER, done TIMESTAMPTZ)"
    )
    store.execute(
        "CREATE TABLE IF NOT EXISTS pipeline_progress (route TEXT PRIMARY KEY, "
        "last_event TIMESTAMPTZ, messages BIGINT, events BIGINT, updated TIMESTAMPTZ)"
    )


# (version, what it does, how): append only; a released migration is never edited.
MIGRATIONS: tuple[tuple[int, str, Callable[[PostgresStore], None]], ...] = (
    (1, "events and rejected tables; event_id unique; time/class/entity/source indexes", _v1),
    (2, "findings and detector_state tables with their indexes", _v2),
    (3, "management tables (tokens, audit, statuses, suppressions, agents, policies)", _v3),
    (4, "distributed pipeline bookkeeping: pipeline_done, pipeline_progress", _v4),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class PostgresStore:
    """`Store` over PostgreSQL. ``url`` is a ``postgresql://`` connection string."""

    dialect = "postgres"
    _stopped = False  # set by `interrupt`: this connection answers no further query

    def __init__(self, url: str) -> None:
        self.url = url
        self._con = _connect(url)
        self._migrate()
        self._con.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{_STAGE}" (LIKE events)')

    def cursor(self) -> PostgresStore:
        """Another connection to the same database, for a reader that must neither wait on
        nor hold up this one (a hunt beside intake, which appends on this one under the
        API's store lock). Its temporary tables are its own; `interrupt` cancels its running
        statement. Not for appends (it has no staging table). `close` it when done."""
        other = object.__new__(PostgresStore)
        other.url = self.url
        other._con = _connect(self.url)
        return other

    def interrupt(self) -> None:
        """Cancel the statement running on this connection (safe from another thread: a
        cancel request on a connection of its own); it raises `StoreError`. Later `query` /
        `execute` calls raise too, so a timer that fires between two statements is not
        lost. Meant for a `cursor` that is closed after."""
        self._stopped = True
        self._con.cancel_safe(timeout=5.0)

    def _refuse_if_stopped(self) -> None:
        if self._stopped:
            raise StoreError("query canceled (time limit)")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all (nested ones are savepoints):
        the distributed runner stores a stage's whole output this way before it acks."""
        with self._con.transaction():
            yield

    def append(self, batch: Batch) -> AppendResult:
        if batch.num_rows == 0:
            return AppendResult(0, 0)
        unique = unique_by_event_id(batch.select(SCHEMA.names).cast(SCHEMA))
        with self.transaction():
            self._con.execute(f'TRUNCATE "{_STAGE}"')
            self._copy_in(_STAGE, unique)
            stored = self._con.execute(
                f'INSERT INTO events SELECT * FROM "{_STAGE}" ON CONFLICT (event_id) DO NOTHING'
            ).rowcount
        return AppendResult(stored, batch.num_rows - stored)

    def append_rejected(self, rejected: pa.Table) -> int:
        if rejected.num_rows == 0:
            return 0
        with self.transaction():
            self.register("_kestrel_rejected", rejected.select(REJECTED_SCHEMA.names))
            n = self._con.execute(
                "INSERT INTO rejected SELECT DISTINCT ON (reject_id) * FROM _kestrel_rejected "
                "ON CONFLICT (reject_id) DO NOTHING"
            ).rowcount
            self.unregister("_kestrel_rejected")
        return n

    def known_event_ids(self, ids: pa.Array | pa.ChunkedArray, span: Span | None) -> pa.Array:
        """Probes of the unique ``event_id`` index (``= ANY`` of one array parameter);
        ``span`` is not needed here: the index finds an id wherever its row lies."""
        self._refuse_if_stopped()
        if len(ids) == 0:
            return pa.array([], pa.string())
        try:
            rows = self._con.execute(
                "SELECT event_id FROM events WHERE event_id = ANY(%s)",
                [pc.unique(ids).to_pylist()],
            ).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        return pa.array([r[0] for r in rows], pa.string())

    def events(self, where: EventFilter) -> Batch:
        sql, params = _filter_sql(where)
        data = self._copy_out(sql, params)
        return from_csv(data, SCHEMA)

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        self._refuse_if_stopped()
        try:
            cur = self._con.execute(*_bind(sql, params))
        except psycopg.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        if cur.description is None:
            return pa.table({})
        names = [c.name for c in cur.description]
        return rows_table(names, [c.type_code for c in cur.description], cur.fetchall())

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        self._refuse_if_stopped()
        try:
            self._con.execute(*_bind(sql, params))
        except psycopg.Error as exc:
            raise StoreError(f"statement failed: {exc}") from exc

    def register(self, name: str, table: pa.Table) -> None:
        """A session-temporary table (it shadows a real table of the same name, as a DuckDB
        view does), filled by COPY."""
        self.unregister(name)
        self._con.execute(create_sql(name, table.schema, temp=True))
        self._copy_in(name, table)

    def unregister(self, name: str) -> None:
        self._con.execute(f'DROP TABLE IF EXISTS pg_temp."{name}"')

    def stats(self) -> Stats:
        by_source = self._pairs("SELECT source, count(*) FROM events GROUP BY 1 ORDER BY 1")
        by_class = self._pairs('SELECT "class", count(*) FROM events GROUP BY 1 ORDER BY 1')
        return Stats(self._count("events"), by_source, by_class, self._count("rejected"))

    def rejected(self, limit: int = 100) -> pa.Table:
        """The rejected records (for `kestrel rejected`)."""
        return self.query("SELECT * FROM rejected ORDER BY path, record, line LIMIT ?", [limit])

    def close(self) -> None:
        self._con.close()

    def _copy_in(self, table: str, data: pa.Table) -> None:
        cols = ", ".join(f'"{n}"' for n in data.column_names)
        with self._con.cursor().copy(f'COPY "{table}" ({cols}) FROM STDIN (FORMAT csv)') as cp:
            cp.write(to_csv(data))

    def _copy_out(self, sql: str, params: list[Any]) -> bytes:
        buf = bytearray()
        query, args = _bind(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params)
        with self._con.cursor().copy(query, args) as cp:
            for chunk in cp:
                buf += chunk
        return bytes(buf)

    def _pairs(self, sql: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._con.execute(sql).fetchall()}

    def _count(self, table: str) -> int:
        row = self._con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS kestrel_migrations "
                "(version INTEGER PRIMARY KEY, description TEXT, applied TIMESTAMPTZ)"
            )
            row = self._con.execute("SELECT max(version) FROM kestrel_migrations").fetchone()
            found = int(row[0]) if row and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"store {_safe(self.url)} has schema version {found}; this Kestrel "
                    f"knows up to {SCHEMA_VERSION}: upgrade Kestrel"
                )
            for version, description, apply in MIGRATIONS[found:]:
                apply(self)
                self.execute(
                    "INSERT INTO kestrel_migrations VALUES (?, ?, ?)",
                    [version, description, datetime.now(UTC)],
                )


def _connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection speaking UTC."""
    try:
        con = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {_safe(url)}: {exc}") from exc
    con.execute("SET TIME ZONE 'UTC'")
    return con


def _bind(sql: str, params: list[Any] | None) -> tuple[str, list[Any] | None]:
    """``?`` placeholders (outside quotes) → ``%s``, ``%`` → ``%%``; untouched without
    parameters, because psycopg only reads placeholders when it is given some."""
    if not params:
        return sql, None
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out), params


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
