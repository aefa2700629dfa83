"""`Store.known_event_ids` over DuckDB and PostgreSQL: the one answer to "which of these
event ids does the store have", used by appends, the API's spool and group writer and
broker intake. Also the PostgreSQL reader connection (`cursor`) and its `interrupt`, which
hunts over the API run on beside intake."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from tests.services import temporary_database

from kestrel.errors import StoreError
from kestrel.events import make_batch
from kestrel.store import Store, open_store, time_span
from kestrel.store import duckdb as duckdb_store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _batch(ids: list[str], first_minute: int = 0) -> pa.Table:
    n = len(ids)
    times = [T0 + timedelta(minutes=first_minute + i) for i in range(n)]
    return make_batch({
        "event_id": ids, "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "class": ["process"] * n, "source": ["agent"] * n, "raw": ["{}"] * n,
    }, n)  # fmt: skip


def _known(store: Store, batch: pa.Table, whole_store: bool = False) -> list[str]:
    span = None if whole_store else time_span(batch.column("time"))
    found = store.known_event_ids(batch.column("event_id"), span)
    assert found.type == pa.string()
    values = found.to_pylist()
    assert len(values) == len(set(values)), f"an id answered twice: {values}"
    return sorted(values)


@pytest.fixture(params=["arrow", "semi-join"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """DuckDB matches a span's stored ids in Arrow up to `SPAN_ROWS` of them and semi-joins
    past that: both forms must give the same answer (PostgreSQL ignores this)."""
    if request.param == "semi-join":
        monkeypatch.setattr(duckdb_store, "SPAN_ROWS", 1)
    return str(request.param)


def test_known_ids_of_a_batch(any_store: Store, lookup: str) -> None:
    assert _known(any_store, _batch(["a", "b"])) == []  # empty store
    any_store.append(_batch(["a", "b", "c"]))
    # a resend with a new event and an id repeated in the batch: each known id once
    again = _batch(["b", "c", "d", "b"], first_minute=1)
    assert _known(any_store, again) == ["b", "c"]
    assert _known(any_store, again, whole_store=True) == ["b", "c"]
    assert _known(any_store, _batch(["x", "y"], first_minute=60)) == []


def test_known_ids_from_chunked_and_empty_ids(any_store: Store) -> None:
    any_store.append(_batch([f"e{i}" for i in range(10)]))
    chunks = pa.chunked_array([["e1", "zz"], [], ["e9", "e1"]])
    span = (T0, T0 + timedelta(minutes=9))
    assert sorted(any_store.known_event_ids(chunks, span).to_pylist()) == ["e1", "e9"]
    assert len(any_store.known_event_ids(pa.array([], pa.string()), span)) == 0
    assert len(any_store.known_event_ids(pa.array([], pa.string()), None)) == 0


def test_the_span_is_only_where_to_look(any_store: Store) -> None:
    """The span bounds the stored rows looked at (both ends included); ids stored at
    the span's first and last instant are found."""
    any_store.append(_batch(["first", "mid", "last"]))
    span = (T0, T0 + timedelta(minutes=2))
    got = any_store.known_event_ids(pa.array(["first", "last", "new"]), span)
    assert sorted(got.to_pylist()) == ["first", "last"]


def test_append_uses_the_lookup_and_counts_exactly(any_store: Store, lookup: str) -> None:
    """Appends are idempotent through the same lookup: a resend is all duplicates, a
    partial overlap stores only the new rows, repeats within a batch count as duplicates."""
    first = any_store.append(_batch([f"e{i}" for i in range(50)]))
    resend = any_store.append(_batch([f"e{i}" for i in range(50)]))
    mixed = any_store.append(_batch([f"e{i}" for i in range(40, 60)] + ["e55"], first_minute=40))
    assert (first.stored, first.duplicates) == (50, 0)
    assert (resend.stored, resend.duplicates) == (0, 50)
    assert (mixed.stored, mixed.duplicates) == (10, 11)
    assert any_store.stats().total == 60


def test_time_span() -> None:
    times = pa.chunked_array([[T0 + timedelta(hours=1)], [T0, T0 + timedelta(hours=2)]])
    assert time_span(times) == (T0, T0 + timedelta(hours=2))
    assert time_span(pa.chunked_array([[T0, None]], pa.timestamp("us", tz="UTC"))) is None
    assert time_span(pa.array([], pa.timestamp("us", tz="UTC"))) is None


@pytest.mark.services
def test_postgres_cursor_is_a_second_connection_that_can_be_interrupted() -> None:
    """A reader connection of its own: it sees the store's rows, its statement is cancelled
    by `interrupt` from another thread (and later ones refused), and the store's own
    connection goes on; an append on the store does not wait for the reader's query."""
    with temporary_database() as url:
        store = open_store(url)
        try:
            store.append(_batch(["a", "b"]))
            reader = store.cursor()  # type: ignore[attr-defined]
            assert reader.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 2
            failed: list[BaseException] = []

            def sleep() -> None:
                try:
                    reader.query("SELECT pg_sleep(30)")
                except BaseException as exc:  # what the thread saw
                    failed.append(exc)

            runner = threading.Thread(target=sleep)
            started = time.monotonic()
            runner.start()
            time.sleep(0.3)
            assert store.append(_batch(["c"], first_minute=5)).stored == 1  # not held up
            reader.interrupt()
            runner.join(20)
            assert not runner.is_alive() and time.monotonic() - started < 20
            assert failed and isinstance(failed[0], StoreError), failed
            with pytest.raises(StoreError):
                reader.query("SELECT 1")
            reader.close()
            assert store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 3
        finally:
            store.close()
