"""Store fixtures: ``any_store`` is the same empty store over DuckDB and over PostgreSQL (its
own database, dropped afterwards), so one test checks both implementations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.services import temporary_database

from kestrel.store import DuckDBStore, Store, open_store


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.services)])
def any_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """An empty store of each kind."""
    if request.param == "duckdb":
        store: Store = DuckDBStore(":memory:")
        yield store
        store.close()
        return
    with temporary_database() as url:
        store = open_store(url)
        yield store
        store.close()
