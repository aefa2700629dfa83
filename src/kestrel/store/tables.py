"""DDL for the store's tables, derived from the event schema so the two cannot drift."""

from __future__ import annotations

import pyarrow as pa

from kestrel.events import SCHEMA

# Records a reader could not turn into events, with where they came from and why.
REJECTED_SCHEMA = pa.schema(
    [
        ("reject_id", pa.string()),
        ("path", pa.string()),
        ("line", pa.int64()),
        ("record", pa.int64()),
        ("offset", pa.int64()),
        ("format", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)

_SQL_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def events_ddl(table: str = "events", options: dict[str, str] | None = None) -> str:
    """CREATE TABLE for the events table (generic SQL; DuckDB and PostgreSQL accept it).

    ``options`` adds a dialect's clause to a column, e.g. DuckDB's ``USING COMPRESSION zstd``.
    """
    extra = options or {}
    cols = ",\n  ".join(
        f'"{f.name}" {_SQL_TYPES[f.type]} {extra.get(f.name, "")}'.rstrip() for f in SCHEMA
    )
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)"


def rejected_ddl(table: str = "rejected") -> str:
    """CREATE TABLE for rejected records."""
    cols = ",\n  ".join(f'"{f.name}" {_SQL_TYPES[f.type]}' for f in REJECTED_SCHEMA)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)"
