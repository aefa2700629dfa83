"""Intake through the write-ahead spool: an answered request is durable (a crash before the
store commit loses nothing: the spool is replayed at start), a torn last record is skipped,
and each request's stored / duplicate counts stay exact while rows wait for the store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kestrel.api import ApiSettings, Role, create_app, create_token
from kestrel.api import spool as spool_module
from kestrel.api.intake import Parsed, parse_body
from kestrel.api.spool import Spool, SpoolWriter, records
from kestrel.api.writer import GroupWriter
from kestrel.events import Batch
from kestrel.store import DuckDBStore
from kestrel.store import duckdb as duckdb_store
from kestrel.store.management import ManagementStore


def body(agent: str, first: int, n: int) -> bytes:
    """``n`` agent envelopes as JSON Lines, timestamps ``first`` .. ``first + n - 1`` ms."""
    return b"".join(
        json.dumps({"agent_id": agent, "event_type": "process", "timestamp": 1714570867000 + i,
                    "payload": {"action": "start", "pid": i, "name": "w"}}).encode() + b"\n"
        for i in range(first, first + n)
    )  # fmt: skip


def count(store: DuckDBStore) -> int:
    return int(store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py())


def writer_for(store: DuckDBStore, folder: Path) -> SpoolWriter:
    return SpoolWriter(store, threading.RLock(), folder, 1 << 26, 100_000)


def parsed(data: bytes) -> Parsed:
    return parse_body(data, "agent", "api/test", 100_000)


def test_spool_is_the_default_over_a_file_and_answers_exact_counts(tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    store = DuckDBStore(db)
    token, _ = create_token(ManagementStore(store), Role.AGENT, "a1")
    app = create_app(ApiSettings(db=str(db)), store=store)
    state = app.state.kestrel
    assert isinstance(state.writer, SpoolWriter)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        first = client.post("/api/v1/events", content=body("a1", 0, 100), headers=headers)
        assert first.status_code == 200 and first.json()["stored"] == 100, first.text
        again = client.post("/api/v1/events", content=body("a1", 50, 100), headers=headers)
        assert (again.json()["stored"], again.json()["duplicates"]) == (50, 50)
        assert state.writer.wait_idle(30)
        assert count(store) == 150
        resent = client.post("/api/v1/events", content=body("a1", 0, 10), headers=headers)
        assert (resent.json()["stored"], resent.json()["duplicates"]) == (0, 10)
        bad = client.post("/api/v1/events", content=b"{nope", headers=headers)
        assert bad.status_code == 422
    assert not list((tmp_path / "k.duckdb.spool").glob("*.spool"))  # drained and dropped
    store.close()


def test_memory_store_or_spool_off_answers_after_the_commit(tmp_path: Path) -> None:
    assert isinstance(create_app(store=DuckDBStore()).state.kestrel.writer, GroupWriter)
    store = DuckDBStore(tmp_path / "k.duckdb")
    app = create_app(ApiSettings(db=str(tmp_path / "k.duckdb"), spool=False), store=store)
    assert isinstance(app.state.kestrel.writer, GroupWriter)
    app.state.kestrel.writer.close()
    store.close()


@pytest.mark.parametrize("span_rows", [100_000, 3])
def test_counts_exact_while_rows_wait_for_the_store(
    tmp_path: Path, span_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store lock is held, so nothing is committed: duplicates are found among the
    rows still queued, then against the store once they are in (stored rows of the
    batch's span matched in Arrow, or, past ``SPAN_ROWS`` of them, joined in DuckDB)."""
    monkeypatch.setattr(duckdb_store, "SPAN_ROWS", span_rows)
    store = DuckDBStore(tmp_path / "k.duckdb")
    lock = threading.RLock()
    writer = SpoolWriter(store, lock, tmp_path / "spool", 1 << 26, 100_000)
    with lock:
        a = writer.submit(parsed(body("x", 0, 20)).batch, None, "agent", "t", body("x", 0, 20))
        b = writer.submit(parsed(body("x", 10, 20)).batch, None, "agent", "t", body("x", 10, 20))
        assert (a.stored, a.duplicates, b.stored, b.duplicates) == (20, 0, 10, 10)
        assert count(store) == 0  # answered, not yet in the store
    assert writer.wait_idle(30) and count(store) == 30
    c = writer.submit(parsed(body("x", 25, 10)).batch, None, "agent", "t", body("x", 25, 10))
    assert (c.stored, c.duplicates) == (5, 5)
    writer.close()
    assert count(store) == 35
    store.close()


def counting_inserts(monkeypatch: pytest.MonkeyPatch, store: DuckDBStore) -> list[int]:
    """Rows of each `insert_new` on ``store`` (the spool writer's appends), in order."""
    inserted: list[int] = []
    real_insert = store.insert_new

    def counting(batch: Batch) -> None:
        inserted.append(batch.num_rows)
        real_insert(batch)

    monkeypatch.setattr(store, "insert_new", counting)
    return inserted


def test_queued_requests_are_appended_as_one_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer lingers for a group to fill (an append's cost per row falls with its
    size), and someone waiting for the store (`wait_idle`) ends the lingering at once."""
    monkeypatch.setattr(spool_module, "LINGER_SECONDS", 30.0)
    monkeypatch.setattr(spool_module, "MAX_LINGER_SECONDS", 60.0)
    store = DuckDBStore(tmp_path / "k.duckdb")
    inserted = counting_inserts(monkeypatch, store)
    writer = SpoolWriter(store, threading.RLock(), tmp_path / "spool", 1 << 26, 100_000)
    for n in range(3):
        data = body(f"a{n}", 0, 40)
        assert writer.submit(parsed(data).batch, None, "agent", "t", data).stored == 40
    started = time.monotonic()
    assert writer.wait_idle(20)
    assert time.monotonic() - started < 15, "wait_idle waited out the linger"
    assert inserted == [120], inserted
    assert store.stats().total == 120
    writer.close()
    store.close()


def test_a_full_group_is_appended_without_lingering_and_requests_split_across_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends are whole groups of `GROUP_ROWS` (DuckDB's row group: compressed straight
    into the file); a request's rows may be cut between two of them, and its spool record
    is dropped, its ids forgotten, once its last rows are in."""
    monkeypatch.setattr(spool_module, "GROUP_ROWS", 50)
    monkeypatch.setattr(spool_module, "LINGER_SECONDS", 30.0)
    monkeypatch.setattr(spool_module, "MAX_LINGER_SECONDS", 60.0)
    store = DuckDBStore(tmp_path / "k.duckdb")
    inserted = counting_inserts(monkeypatch, store)
    writer = writer_for(store, tmp_path / "spool")
    writer._spool._segment_bytes = 1  # a segment per request: each is dropped when stored
    for n in range(3):  # 120 rows: two full groups go at once, 20 rows linger
        data = body(f"s{n}", 0, 40)
        assert writer.submit(parsed(data).batch, None, "agent", "t", data).stored == 40
    last = set(ids_of(body("s2", 0, 40)))
    deadline = time.monotonic() + 20
    while writer._inflight != last and time.monotonic() < deadline:  # s0, s1 stored
        time.sleep(0.01)
    assert inserted == [50, 50], inserted  # s1 cut after 10 rows, s2 after 20
    assert writer._inflight == last  # s2 is not all in: all its ids stay queued
    reader = store.cursor()
    assert count(reader) == 100
    reader.close()
    assert len(list((tmp_path / "spool").glob("*.spool"))) == 1  # s2's, s0's and s1's gone
    assert writer.wait_idle(20) and inserted == [50, 50, 20]
    assert count(store) == 120 and not writer._inflight
    writer.close()
    assert not list((tmp_path / "spool").glob("*.spool"))
    store.close()


def test_the_writer_stops_lingering_when_requests_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows coming fast enough to fill a group make the writer wait for it (up to
    `MAX_LINGER_SECONDS`), but not once they stop: then the rows are stored about
    `LINGER_SECONDS` after the last request, not when the longer wait ends."""
    monkeypatch.setattr(spool_module, "GROUP_ROWS", 1_000)
    monkeypatch.setattr(spool_module, "LINGER_SECONDS", 0.3)
    monkeypatch.setattr(spool_module, "MAX_LINGER_SECONDS", 60.0)
    store = DuckDBStore(tmp_path / "k.duckdb")
    inserted = counting_inserts(monkeypatch, store)
    writer = writer_for(store, tmp_path / "spool")
    started = time.monotonic()
    for n in range(3):  # 120 rows at once: at that rate 1,000 would come within 60 s
        data = body(f"p{n}", 0, 40)
        writer.submit(parsed(data).batch, None, "agent", "t", data)
    while not inserted and time.monotonic() - started < 20:
        time.sleep(0.01)
    assert inserted == [120] and time.monotonic() - started < 4  # lingering ~0.3 s, not ~7
    writer.close()
    store.close()


def test_rows_checked_before_another_writers_append_are_looked_up_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live scenario appends to the store directly (`DuckDBStore.append`): rows a request
    checked before that append are looked up again, so an id it stored meanwhile is not
    stored twice; rows checked after it are inserted as they are."""
    monkeypatch.setattr(spool_module, "LINGER_SECONDS", 30.0)
    monkeypatch.setattr(spool_module, "MAX_LINGER_SECONDS", 60.0)
    store = DuckDBStore(tmp_path / "k.duckdb")
    inserted = counting_inserts(monkeypatch, store)
    writer = writer_for(store, tmp_path / "spool")
    data = body("l", 0, 30)
    assert writer.submit(parsed(data).batch, None, "agent", "t", data).stored == 30
    with writer._lock:  # the live scenario stores 10 of those events before the writer
        assert store.append(parsed(body("l", 0, 10)).batch).stored == 10
    assert writer.wait_idle(20)
    assert inserted == [] and count(store) == 30  # looked up: the 10 were not stored again
    data = body("l", 30, 10)  # checked after that append: inserted without a lookup
    assert writer.submit(parsed(data).batch, None, "agent", "t", data).stored == 10
    assert writer.wait_idle(20) and inserted == [10] and count(store) == 40
    writer.close()
    store.close()


def ids_of(data: bytes) -> list[str]:
    return [str(i) for i in parsed(data).batch.column("event_id").to_pylist()]


def test_concurrent_senders_store_everything_once(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "k.duckdb")
    writer = writer_for(store, tmp_path / "spool")
    results = []

    def send(agent: str) -> None:
        for k in range(5):  # 5 requests of 40, each sharing 10 events with the next
            data = body(agent, k * 30, 40)
            results.append(writer.submit(parsed(data).batch, None, "agent", "t", data))

    threads = [threading.Thread(target=send, args=(a,)) for a in "wxyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert count(store) == 4 * (4 * 30 + 40)
    assert sum(r.stored for r in results) == count(store)
    assert sum(r.duplicates for r in results) == 4 * 4 * 10
    store.close()


_CRASH = """
import sys, threading
from pathlib import Path
from kestrel.api.intake import parse_body
from kestrel.api.spool import SpoolWriter
from kestrel.store import DuckDBStore
from kestrel.store import duckdb as duckdb_store
sys.path.insert(0, sys.argv[3])
from test_spool import body
store = DuckDBStore(sys.argv[1])
lock = threading.RLock()
writer = SpoolWriter(store, lock, Path(sys.argv[2]), 1 << 26, 100_000)
lock.acquire()  # the writer never gets to append: the crash comes before any commit
for k in range(3):
    data = body("crash", k * 100, 100)
    r = writer.submit(parse_body(data, "agent", "t", 100_000).batch, None, "agent", "t", data)
    print(r.stored, flush=True)
import os
os._exit(0)  # no close, no drain: as if the power went
"""


def test_answered_events_survive_a_crash_before_the_commit(tmp_path: Path) -> None:
    db, folder = tmp_path / "k.duckdb", tmp_path / "k.duckdb.spool"
    here = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", _CRASH, str(db), str(folder), here],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["100", "100", "100"]  # all three answered
    with next(folder.glob("*.spool")).open("ab") as f:
        f.write(b"KSP1\x10\x00")  # and a torn record after them: never answered
    store = DuckDBStore(db)
    assert count(store) == 0  # nothing had reached the store
    app = create_app(ApiSettings(db=str(db)), store=store)  # replays the spool at start
    assert app.state.kestrel.writer.recovered == 300
    assert count(store) == 300
    app.state.kestrel.writer.close()
    store.close()


def test_torn_or_damaged_records_stop_the_replay_of_their_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write("agent", "t", b"one")
    spool.write("agent", "t", b"two")
    spool.close(drop_all=False)
    [path] = spool.segments()
    assert [b for _, _, b in records(path)] == [b"one", b"two"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last body damaged: its CRC fails
    path.write_bytes(bytes(data))
    assert [b for _, _, b in records(path)] == [b"one"]
    path.write_bytes(bytes(data[: len(data) // 2]))
    assert len(list(records(path))) <= 1


@pytest.mark.parametrize("segment_bytes", [1, 1 << 20])
def test_committed_segments_are_dropped(tmp_path: Path, segment_bytes: int) -> None:
    store = DuckDBStore(tmp_path / "k.duckdb")
    writer = writer_for(store, tmp_path / "spool")
    writer._spool._segment_bytes = segment_bytes  # one segment per request, or one for all
    for k in range(4):
        data = body("s", k * 10, 10)
        writer.submit(parsed(data).batch, None, "agent", "t", data)
    assert writer.wait_idle(30)
    assert len(list((tmp_path / "spool").glob("*.spool"))) == 1  # the open one only
    writer.close()
    assert not list((tmp_path / "spool").glob("*.spool"))
    assert count(store) == 40
    store.close()
