"""Findings and detector state in the store, beside the events.

Why here: detectors never touch the store (import-linter forbids it); the pipeline persists
what they produce through this module. Everything goes through `Store.query` in plain SQL
with JSON text for the list-valued fields, so the PostgreSQL store can run it unchanged.

* ``findings``: one row per finding (the pipeline merges a new finding with a stored one of
  the same detector and entity whose time span overlaps, and replaces the stored row);
* ``finding_aliases``: the ids of stored findings that a later merge folded into another
  (old id → the surviving finding's id), so a link or a status recorded under the old id
  still resolves;
* ``detector_state``: each detector's learnt state as Arrow IPC bytes, by detector and name,
  and the pipeline's cursor (the last event time processed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pyarrow as pa

from kestrel.store.base import Store

_DDL = (
    """CREATE TABLE IF NOT EXISTS findings (
  finding_id VARCHAR, detector VARCHAR, entity_type VARCHAR, entity_id VARCHAR,
  first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, severity INTEGER, title VARCHAR,
  techniques VARCHAR, signals VARCHAR, evidence VARCHAR, source_ids VARCHAR, tags VARCHAR,
  window_seconds INTEGER)""",
    """CREATE TABLE IF NOT EXISTS finding_aliases (old_id VARCHAR, finding_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS detector_state (
  detector VARCHAR, name VARCHAR, data BYTEA, updated TIMESTAMPTZ)""",
)
COLUMNS = ("finding_id", "detector", "entity_type", "entity_id", "first_seen", "last_seen",
            "severity", "title", "techniques", "signals", "evidence", "source_ids", "tags",
            "window_seconds")  # fmt: skip


def ensure_tables(store: Store) -> None:
    """Create the findings and state tables if they are not there (idempotent)."""
    for ddl in _DDL:
        store.query(ddl)


class FindingsTable:
    """The ``findings`` table, as plain rows (dicts with the `COLUMNS` keys; list-valued
    fields as JSON text). Turning rows into `Finding`s and merging them is the pipeline's
    job: the store sits below the findings stage and does not import it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        ensure_tables(store)

    def replace(self, delete_ids: Iterable[str], rows: Iterable[dict[str, Any]]) -> int:
        """Delete the findings with ``delete_ids``, insert ``rows``; the rows inserted."""
        for finding_id in delete_ids:
            self.store.query("DELETE FROM findings WHERE finding_id = ?", [finding_id])
        marks = ", ".join("?" for _ in COLUMNS)
        n = 0
        for row in rows:
            self.store.query(f"INSERT INTO findings VALUES ({marks})", [row[c] for c in COLUMNS])
            n += 1
        return n

    def select(
        self, where: str = "", params: list[Any] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching a SQL condition over the table's columns, oldest first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM findings"
        sql += f" WHERE {where}" if where else ""
        sql += " ORDER BY first_seen, finding_id"
        sql += f" LIMIT {int(limit)}" if limit else ""
        rows: list[dict[str, Any]] = self.store.query(sql, params).to_pylist()
        return rows

    def add_aliases(self, aliases: dict[str, str]) -> None:
        """Remember that each old id (key) now lives on as another finding (value)."""
        for old, new in aliases.items():
            self.store.query("INSERT INTO finding_aliases VALUES (?, ?)", [old, new])

    def resolve(self, finding_id: str, hops: int = 16) -> str:
        """The id a finding lives on under: ``finding_id`` itself unless a merge folded it
        into another (followed through chains of merges)."""
        for _ in range(hops):
            rows = self.store.query(
                "SELECT finding_id FROM finding_aliases WHERE old_id = ?", [finding_id]
            ).to_pylist()
            if not rows:
                break
            finding_id = rows[-1]["finding_id"]
        return finding_id

    def aliases(self) -> dict[str, str]:
        """Every old id and the id it was folded into (one hop)."""
        rows = self.store.query("SELECT old_id, finding_id FROM finding_aliases").to_pylist()
        return {r["old_id"]: r["finding_id"] for r in rows}


class StateTable:
    """The ``detector_state`` table: Arrow tables by (detector, name), as IPC bytes."""

    CURSOR = "__cursor__"

    def __init__(self, store: Store) -> None:
        self.store = store
        ensure_tables(store)

    def save(self, detector: str, tables: dict[str, pa.Table], now: datetime) -> None:
        """Replace the stored state of ``detector`` with ``tables``."""
        self.store.query("DELETE FROM detector_state WHERE detector = ?", [detector])
        for name, table in tables.items():
            self.store.query(
                "INSERT INTO detector_state VALUES (?, ?, ?, ?)",
                [detector, name, _ipc(table), now],
            )

    def load(self, detector: str) -> dict[str, pa.Table]:
        """The stored state of ``detector`` (empty when there is none)."""
        rows = self.store.query(
            "SELECT name, data FROM detector_state WHERE detector = ?", [detector]
        ).to_pylist()
        return {r["name"]: pa.ipc.open_stream(r["data"]).read_all() for r in rows}

    def cursor(self) -> datetime | None:
        """The time of the last event the pipeline processed."""
        table = self.load(self.CURSOR).get("time")
        return None if table is None or table.num_rows == 0 else table.column(0)[0].as_py()

    def set_cursor(self, time: datetime, now: datetime) -> None:
        """Remember ``time`` as the last processed event time."""
        table = pa.table({"time": pa.array([time], pa.timestamp("us", tz="UTC"))})
        self.save(self.CURSOR, {"time": table}, now)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
