"""Entity profiles in the store: ``entity_profiles`` (one row per entity) and
``entity_operations`` (one row per entity, service and operation).

Why real tables (and not a state blob like ``detector_state``): analysts, hunts and the API
query profiles ("which principals ever called StopLogging", "which workloads run in a region
their account never used"), so they are kept as columns SQL can reach. The pipeline writes
the whole set after each run (it is one row per entity, small beside the events); the rows'
meaning is defined by `kestrel.detect.profile`, which the store does not import.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from kestrel.store.base import Store

TABLES = {"profiles": "entity_profiles", "operations": "entity_operations"}


class ProfileTable:
    """Read and replace the two profile tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def exists(self) -> bool:
        """Whether a run has written profiles yet."""
        rows = self.store.query(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?",
            [TABLES["profiles"]],
        ).to_pylist()
        return bool(rows[0]["n"])

    def save(self, tables: dict[str, pa.Table]) -> None:
        """Replace both tables with ``tables`` (keys ``profiles`` and ``operations``)."""
        for key, name in TABLES.items():
            scratch = f"_kestrel_{name}"
            self.store.register(scratch, tables[key])
            try:
                self.store.execute(f"DROP TABLE IF EXISTS {name}")
                self.store.execute(f"CREATE TABLE {name} AS SELECT * FROM {scratch}")
            finally:
                self.store.unregister(scratch)

    def load(self) -> dict[str, pa.Table]:
        """Both tables as Arrow (empty dict before the first save)."""
        if not self.exists():
            return {}
        return {k: self.store.query(f"SELECT * FROM {n}") for k, n in TABLES.items()}

    def rows(self, entity_type: str | None = None) -> list[dict[str, Any]]:
        """Profile rows, busiest first, optionally of one entity type."""
        if not self.exists():
            return []
        where, params = ("WHERE entity_type = ?", [entity_type]) if entity_type else ("", [])
        sql = f"SELECT * FROM {TABLES['profiles']} {where} ORDER BY events DESC, entity_id"
        rows: list[dict[str, Any]] = self.store.query(sql, params or None).to_pylist()
        return rows

    def one(self, entity_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """One entity's profile row and its operation rows (``None``, [] if unknown)."""
        if not self.exists():
            return None, []
        sql = f"SELECT * FROM {TABLES['profiles']} WHERE entity_id = ?"
        found = self.store.query(sql, [entity_id]).to_pylist()
        if not found:
            return None, []
        ops = f"SELECT * FROM {TABLES['operations']} WHERE entity_id = ? ORDER BY first_seen"
        return found[0], self.store.query(ops, [entity_id]).to_pylist()
