"""The in-memory filter of stored event ids (`kestrel.store.id_index`) and `DuckDBStore`'s
use of it: with the filter on, `known_event_ids` must answer exactly what it answers
without (a key hit is checked in DuckDB; a miss is new), across restarts, cursors, key
collisions, ids of other lengths and the size limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kestrel.events import event_id, make_batch
from kestrel.store import DuckDBStore, id_index, time_span
from kestrel.store.id_index import IdIndex, id_keys

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _batch(ids: list[str], first_minute: int = 0) -> pa.Table:
    n = len(ids)
    times = [T0 + timedelta(seconds=first_minute * 60 + i) for i in range(n)]
    return make_batch({
        "event_id": ids, "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "class": ["process"] * n, "source": ["agent"] * n, "raw": ["{}"] * n,
    }, n)  # fmt: skip


def _ids(lo: int, hi: int) -> list[str]:
    return [event_id("agent", str(i).encode()) for i in range(lo, hi)]


def _known(store: DuckDBStore, ids: list[str], whole_store: bool = True) -> list[str]:
    batch = _batch(ids)
    span = None if whole_store else time_span(batch.column("time"))
    return sorted(store.known_event_ids(batch.column("event_id"), span).to_pylist())


def test_keys_are_the_first_16_hex_digits() -> None:
    ids = _ids(0, 5)
    assert id_keys(pa.array(ids)).tolist() == [int(i[:16], 16) for i in ids]
    sliced = pa.array(["x" * 7, *ids])[1:]  # an offset into the buffers
    assert id_keys(sliced).tolist() == [int(i[:16], 16) for i in ids]
    assert id_keys(pa.chunked_array([ids[:2], ids[2:]])).tolist() == id_keys(pa.array(ids)).tolist()


def test_filter_answers_stored_ids_and_no_new_ones() -> None:
    index = IdIndex()
    assert index.maybe_stored(pa.array(_ids(0, 3))).all()  # off: every id may be stored
    index.start([])
    for lo in range(0, 5_000, 250):  # levels merge as they grow
        index.add(pa.array(_ids(lo, lo + 250)))
    probe = pa.array(_ids(4_900, 5_100))
    assert index.maybe_stored(probe).tolist() == [True] * 100 + [False] * 100


def test_store_answers_the_same_with_the_filter(tmp_path: Path) -> None:
    plain = DuckDBStore(tmp_path / "plain.duckdb")
    indexed = DuckDBStore(tmp_path / "indexed.duckdb")
    indexed.index_event_ids()
    rng = random.Random(7)
    stored: list[str] = []
    for round_ in range(6):
        ids = _ids(round_ * 300, round_ * 300 + 300)
        resend = rng.sample(stored, min(len(stored), 50))
        probe = ids + resend
        for whole in (True, False):
            assert _known(indexed, probe, whole) == _known(plain, probe, whole)
        batch = _batch(ids + resend, round_)
        assert indexed.append(batch) == plain.append(batch)
        stored += ids
    assert _known(indexed, stored) == sorted(stored)
    reopened_check(indexed, tmp_path / "indexed.duckdb", stored)


def reopened_check(store: DuckDBStore, path: Path, stored: list[str]) -> None:
    """After a restart the filter is rebuilt from the store: nothing stored reads as new."""
    store.close()
    again = DuckDBStore(path)
    again.index_event_ids()
    assert again._ids[0].enabled
    assert _known(again, stored + _ids(90_000, 90_010)) == sorted(stored)
    cursor = again.cursor()  # shares the filter, sees the other connection's inserts
    again.insert_new(_batch(_ids(90_000, 90_003)))
    assert _known(cursor, _ids(90_000, 90_010)) == sorted(_ids(90_000, 90_003))
    cursor.close()
    again.close()


def test_a_key_hit_is_checked_exactly() -> None:
    store = DuckDBStore(":memory:")
    store.index_event_ids()
    real = _ids(0, 1)[0]
    store.append(_batch([real]))
    twin = real[:16] + ("0" if real[16] != "0" else "1") + real[17:]  # same key, new id
    assert store._ids[0].maybe_stored(pa.array([twin])).tolist() == [True]
    assert _known(store, [twin, real]) == [real]


def test_ids_of_other_lengths() -> None:
    store = DuckDBStore(":memory:")
    store.index_event_ids()
    odd = ["a", "bb-1", "ccc" * 20]
    store.append(_batch(odd))
    assert _known(store, [*odd, "zz", "a2"]) == sorted(odd)


def test_past_the_limit_the_filter_turns_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(id_index, "MAX_KEYS", 100)
    store = DuckDBStore(":memory:")
    store.index_event_ids()
    store.append(_batch(_ids(0, 80)))
    assert store._ids[0].enabled
    store.append(_batch(_ids(80, 160), 5))
    assert not store._ids[0].enabled  # every check goes to DuckDB again, still exact
    assert _known(store, _ids(150, 170)) == sorted(_ids(150, 160))
