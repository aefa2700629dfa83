"""Stored results: a DISP repeated over unchanged events reads a stored, ordered table.

A hunter runs the same huntbook again and again while refining its last lines, and each run
builds the same entities from the same events: at a million events that is most of the
hunt (grouping by identity key, the anti-join of parent mentions, the sort). The store's
events table only grows (nothing deletes from it), so its row count says whether a query
over it can have changed. When a DISP shows a variable whose query reads the events table
and nothing else (no file source, no other variable, no Sigma table):

* the first time, at a given row count, the query is only noted (a row in
  ``_kestrel_hunt_results``): a one-off hunt over live data costs what it always did;
* the second time, at the same row count, its entities are written once to a table in
  DISP's default order (``first_observed, _key``) and shown from it;
* from then on the DISP reads that table with no ORDER BY: DuckDB returns a scan in the
  order it was written (``preserve_insertion_order``, on by default), so the rows, their
  order and the JSON are the live query's.

When the events grow, every stored result made at the old count is dropped at the next
DISP that looks, and at most `MAX_STORED` are kept (least recently used go first); a table
read in the last `GRACE_S` seconds stays until a later DISP, so that a session showing its
rows (another `Session` on the same store) never finds it gone. Only a
DuckDB store, and only from `MIN_EVENTS` events: below that the live query takes
milliseconds; hunts sent to the API do not use it (a server hunt only reads the store).
``KESTREL_HUNT_STORED_RESULTS=0`` turns it off. Any engine error here (a
read-only store, another writer) means the live query is used instead: a stored result is
never needed for a correct answer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from sqlglot import exp

from kestrel.store import Store

REGISTRY = "_kestrel_hunt_results"
PREFIX = "_kestrel_result_"
MAX_STORED = 8
MAX_NOTES = 256
MIN_EVENTS = 100_000
ENV = "KESTREL_HUNT_STORED_RESULTS"
ORDER = ("first_observed", "_key")  # DISP's default order (`Compiler._default_order`)
# a stored table read this recently is not dropped (stale or over the cap): another
# session on the same store may be showing its rows right now
GRACE_S = 60.0


def enabled() -> bool:
    """Whether stored results are on (``KESTREL_HUNT_STORED_RESULTS`` is not 0 / off / no)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "no", "false")


def reads_events_only(query: exp.Expr, columns: tuple[str, ...]) -> bool:
    """Whether ``query`` reads the ``events`` table and nothing else (its own CTEs aside),
    and gives the columns the stored order needs."""
    if not all(c in columns for c in ORDER):
        return False
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    tables = {t.name for t in query.find_all(exp.Table) if t.name not in ctes}
    return tables == {"events"}


@dataclass
class StoredResults:
    """The store's stored hunt results (one per query text), read and written by DISP."""

    store: Store
    min_events: int = MIN_EVENTS
    max_stored: int = MAX_STORED
    # the registry table exists (made once per instance, not at every DISP)
    _made: bool = field(default=False, init=False)

    def table_for(self, sql: str) -> str | None:
        """The stored table of ``sql`` when there is one for the events as they are now, or
        one was just made because this is the query's second DISP at this row count; None
        when the live query should run (first sighting, too few events, any engine error)."""
        if self.store.dialect != "duckdb":
            return None
        import duckdb

        try:
            return self._table_for(sql)
        except duckdb.Error:
            return None

    def _table_for(self, sql: str) -> str | None:
        rows = self._events_rows()
        if rows < self.min_events:
            return None
        self._registry()
        key = hashlib.sha256(sql.encode()).hexdigest()[:32]
        self._drop_stale(rows)
        found = self.store.query(
            f"SELECT stored FROM {REGISTRY} WHERE key = ? AND events_rows = ?", [key, rows]
        ).to_pylist()
        if not found:
            self.store.execute(f"INSERT INTO {REGISTRY} VALUES (?, ?, 1, NULL, now())", [key, rows])
            self._cap_notes()
            return None
        stored = found[0]["stored"]
        if stored:
            self.store.execute(
                f"UPDATE {REGISTRY} SET used = now() WHERE key = ? AND events_rows = ?", [key, rows]
            )
            return str(stored)
        return self._store(key, rows, sql)

    def _store(self, key: str, rows: int, sql: str) -> str:
        """Write the query's rows in DISP's order, and keep at most `max_stored` tables
        (beyond it, the least recently used ones not read in the last `GRACE_S`)."""
        table = f"{PREFIX}{key}_{rows}"
        order = ", ".join(ORDER)
        self.store.execute(
            f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM ({sql}) AS r ORDER BY {order}'
        )
        self.store.execute(
            f"UPDATE {REGISTRY} SET seen = seen + 1, stored = ?, used = now() "
            "WHERE key = ? AND events_rows = ?",
            [table, key, rows],
        )
        old = self.store.query(
            f"SELECT key, events_rows, stored, used < now() - to_seconds(?) AS idle "
            f"FROM {REGISTRY} WHERE stored IS NOT NULL "
            f"ORDER BY used DESC OFFSET {int(self.max_stored)}",
            [float(GRACE_S)],
        ).to_pylist()
        for row in old:
            if row["idle"]:
                self._forget(row["key"], row["events_rows"], row["stored"])
        return table

    def _cap_notes(self) -> None:
        """Keep the `MAX_NOTES` newest notes: a hunt whose SQL changes at every run (``LAST 5
        DAYS`` counts back from now) is noted each time and never stored."""
        self.store.execute(
            f"DELETE FROM {REGISTRY} WHERE stored IS NULL AND key NOT IN (SELECT key FROM "
            f"{REGISTRY} WHERE stored IS NULL ORDER BY used DESC LIMIT {int(MAX_NOTES)})"
        )

    def _drop_stale(self, rows: int) -> None:
        """Forget every result noted or stored at another row count of the events, except
        tables read in the last `GRACE_S`: another session may be showing one now."""
        stale = self.store.query(
            f"SELECT key, events_rows, stored FROM {REGISTRY} WHERE events_rows <> ? "
            "AND (stored IS NULL OR used < now() - to_seconds(?))",
            [rows, float(GRACE_S)],
        ).to_pylist()
        for row in stale:
            self._forget(row["key"], row["events_rows"], row["stored"])

    def _forget(self, key: str, rows: int, stored: str | None) -> None:
        if stored:
            self.store.execute(f'DROP TABLE IF EXISTS "{stored}"')
        self.store.execute(f"DELETE FROM {REGISTRY} WHERE key = ? AND events_rows = ?", [key, rows])

    def _events_rows(self) -> int:
        return int(self.store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py())

    def _registry(self) -> None:
        if self._made:
            return
        self.store.execute(
            f"CREATE TABLE IF NOT EXISTS {REGISTRY} (key TEXT, events_rows BIGINT, seen INTEGER, "
            "stored TEXT, used TIMESTAMPTZ, PRIMARY KEY (key, events_rows))"
        )
        self._made = True

    def clear(self) -> int:
        """Drop every stored result and note (the bench's cold runs); how many tables."""
        if self.store.dialect != "duckdb":
            return 0
        self._registry()
        rows = self.store.query(f"SELECT key, events_rows, stored FROM {REGISTRY}").to_pylist()
        for row in rows:
            self._forget(row["key"], row["events_rows"], row["stored"])
        return sum(1 for r in rows if r["stored"])
