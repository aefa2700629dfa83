"""Where a session's variables live in the store: a view first, a table once it is reused.

A variable made by GET or FIND is a temporary *view*: the next statement that reads it runs
its query inside its own, so the engine plans both together. ``q = FIND process CREATED p``
needs only ``p``'s keys, and DISP needs only the attributes it shows; with ``p`` stored as
a table every attribute of every entity would be aggregated and written first. The second
statement that reads a variable turns it into a temporary table (``CREATE TABLE AS SELECT *
FROM view``), so a variable a hunter keeps coming back to is computed at most twice.

Rows made in Python (NEW, LOAD, APPLY) are tables from the start: their Arrow source is
gone after the statement. A replaced variable's relation is kept until the session closes,
because views made from it still read it.
"""

from __future__ import annotations

from kestrel.store import Store


class Relations:
    """The session's views and tables, and how often each was read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._views: list[str] = []  # in creation order: a view reads only older ones
        self._tables: list[str] = []
        self._reads: dict[str, int] = {}
        self._reading: set[str] = set()  # read by the statement running now

    def view(self, name: str, sql: str) -> None:
        """``CREATE TEMP VIEW name AS sql``."""
        self._store.execute(f'CREATE TEMP VIEW "{name}" AS {sql}')
        self._views.append(name)

    def table(self, name: str, sql: str) -> None:
        """``CREATE TEMP TABLE name AS sql``."""
        self._store.execute(f'CREATE TEMP TABLE "{name}" AS {sql}')
        self._tables.append(name)

    def columns(self, name: str) -> tuple[str, ...]:
        """The relation's column names (``LIMIT 0``: nothing is computed)."""
        return tuple(self._store.query(f'SELECT * FROM "{name}" LIMIT 0').column_names)

    def read(self, name: str) -> str:
        """The relation a statement should read for ``name``: a view read by an earlier
        statement is stored as a table first (``name`` + ``_t``) and that is returned."""
        stored = f"{name}_t"
        again = self._reads.get(name, 0) and name not in self._reading
        if name in self._views and again and stored not in self._tables:
            self.table(stored, f'SELECT * FROM "{name}"')
        self._reading.add(name)
        return stored if stored in self._tables else name

    def statement_done(self) -> None:
        """Count the reads of the statement that just ran."""
        for name in self._reading:
            self._reads[name] = self._reads.get(name, 0) + 1
        self._reading.clear()

    def close(self) -> None:
        """Drop every view, newest first (PostgreSQL refuses to drop a view others read),
        then every table."""
        for name in reversed(self._views):
            self._store.execute(f'DROP VIEW IF EXISTS "{name}"')
        for name in self._tables:
            self._store.execute(f'DROP TABLE IF EXISTS "{name}"')
        self._views.clear()
        self._tables.clear()
