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


# PostgreSQL spells a few types differently (it has no DOUBLE); the rest are shared.
POSTGRES_TYPES: dict[pa.DataType, str] = {**_SQL_TYPES, pa.float64(): "DOUBLE PRECISION"}


def events_ddl(
    table: str = "events",
    options: dict[str, str] | None = None,
    types: dict[pa.DataType, str] | None = None,
) -> str:
    """CREATE TABLE for the events table; ``types`` is the dialect's type names
    (DuckDB's by default, `POSTGRES_TYPES` for PostgreSQL).

    ``options`` adds a dialect's clause to a column, e.g. DuckDB's ``USING COMPRESSION zstd``.
    """
    extra, names = options or {}, types or _SQL_TYPES
    cols = ",\n  ".join(
        f'"{f.name}" {names[f.type]} {extra.get(f.name, "")}'.rstrip() for f in SCHEMA
    )
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)"


def rejected_ddl(table: str = "rejected", types: dict[pa.DataType, str] | None = None) -> str:
    """CREATE TABLE for rejected records."""
    names = types or _SQL_TYPES
    cols = ",\n  ".join(f'"{f.name}" {names[f.type]}' for f in REJECTED_SCHEMA)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)"
