"""The store: where batches are kept and queried.

Contract: `Store.append` takes a batch conforming to `kestrel.events.SCHEMA` and keeps each
``event_id`` once, however often it is sent; rejected records are kept aside in their own
table. Everything above the store talks to the `Store` protocol, never to DuckDB directly,
so the PostgreSQL implementation can take its place.
"""

from __future__ import annotations

from pathlib import Path

from kestrel.errors import ConfigError
from kestrel.store.base import AppendResult, EventFilter, Span, Stats, Store, time_span
from kestrel.store.duckdb import DuckDBStore


def open_store(db: str | Path) -> Store:
    """Open the store a ``--db`` value names: a ``postgresql://`` URL (the shared store of
    the distributed deployment), a DuckDB file path, or ``:memory:``."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        # imported here: psycopg is only loaded by deployments that use it
        from kestrel.store.postgres import PostgresStore

        return PostgresStore(text)
    if "://" in text:
        raise ConfigError(f"--db {text.split('://')[0]}://… is not a store Kestrel knows")
    return DuckDBStore(text)


__all__ = [
    "AppendResult", "DuckDBStore", "EventFilter", "Span", "Stats", "Store", "open_store",
    "time_span",
]  # fmt: skip
