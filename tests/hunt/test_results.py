"""Stored results (`kestrel.hunt.results`): a DISP repeated over unchanged events reads a
stored table, with the live query's rows in the live query's order.

The store holds the EVTX attack samples (../shared/datasets), appended in a shuffled row
order so that the order the rows were written in is not DISP's order: a stored result
read back in the wrong order, or a stale one read after new events, fails these tests.
"""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from kestrel.hunt import results
from kestrel.hunt.display import TableDisplay
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore

HUNTS = {
    "processes": "p = GET process\nDISP p",
    "parents": "p = GET process\nq = FIND process CREATED p\nDISP q ATTR pid, name, host",
    "filtered": "p = GET process WHERE name LIKE '%.exe'\nDISP p ATTR name, command_line",
    "files": "f = GET file\nDISP f",
    "users": "u = GET user-account\nDISP TIMESTAMPED(u)",
    "sorted": "p = GET process\nDISP p SORT BY pid ASC LIMIT 40 OFFSET 5",
    "page": "p = GET process\nDISP p WHERE name = 'cmd.exe' LIMIT 7",
}


@pytest.fixture(scope="module")
def evtx_events(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """The EVTX attack samples as one event batch, rows shuffled (seeded)."""
    from tests.conftest import DATASETS

    archive = DATASETS / "evtx_attack_samples" / "evtx_attack_samples.zip"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    work = tmp_path_factory.mktemp("evtx")
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            if name.endswith(".evtx"):
                (work / f"{len(list(work.iterdir())):03}_{Path(name).name}").write_bytes(
                    z.read(name)
                )
    from kestrel.hunt.sources import read_events

    events = read_events(sorted(work.iterdir()))
    order = list(range(events.num_rows))
    random.Random(7).shuffle(order)
    return events.take(pa.array(order))


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stale tables go at once (the grace period has its own test)."""
    monkeypatch.setattr(results, "GRACE_S", 0.0)


@pytest.fixture
def store(evtx_events: pa.Table, tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "k.duckdb")
    s.append(evtx_events)
    yield s
    s.close()


def run(store: DuckDBStore, hunt: str, stored: bool = True) -> tuple[str, str]:
    """The hunt's DISP as JSON text, and the SQL its rows came from."""
    with Session(store, lazy_display=True, stored_results=stored, stored_min_events=0) as s:
        (display,) = s.execute(hunt)
        assert isinstance(display, TableDisplay)
        rows = display.rows
        text = display.json_text()
        return text, rows._sql(rows._query)  # type: ignore[union-attr]


def registry(store: DuckDBStore) -> list[dict[str, object]]:
    return store.query(
        f"SELECT key, events_rows, seen, stored FROM {results.REGISTRY} ORDER BY key"
    ).to_pylist()


def stored_tables(store: DuckDBStore) -> set[str]:
    names = store.query("SELECT table_name FROM duckdb_tables()").column("table_name")
    return {n for n in names.to_pylist() if n.startswith(results.PREFIX)}


@pytest.mark.datasets
@pytest.mark.parametrize("name", list(HUNTS))
def test_third_disp_reads_the_stored_rows_in_the_live_order(store: DuckDBStore, name: str) -> None:
    hunt = HUNTS[name]
    live, live_sql = run(store, hunt, stored=False)
    assert json.loads(live)["rows"], "the hunt shows rows"
    first, _ = run(store, hunt)  # noted only
    assert first == live
    assert [r["stored"] for r in registry(store)] == [None]
    second, second_sql = run(store, hunt)  # stored, and shown from the table
    third, third_sql = run(store, hunt)  # read
    assert second == third == live
    assert len(stored_tables(store)) == 1
    assert results.PREFIX in second_sql and results.PREFIX in third_sql
    assert results.PREFIX not in live_sql
    whole = "LIMIT" not in hunt and "SORT" not in hunt
    # a whole DISP of a stored result is not sorted again: its rows are read in the
    # order they were written, which the shuffled events make different from the rows'
    assert ("ORDER BY" in third_sql) is not whole


@pytest.mark.datasets
def test_new_events_make_the_stored_result_stale(store: DuckDBStore) -> None:
    hunt = HUNTS["processes"]
    for _ in range(2):
        run(store, hunt)
    before = json.loads(run(store, hunt)[0])["rows"]
    assert stored_tables(store)
    extra = store.query(
        "SELECT * REPLACE ('new-guid' AS process_guid, 'brand-new.exe' AS process_name, "
        "'e-new' AS event_id) FROM events WHERE \"class\" = 'process' LIMIT 1"
    )
    store.append(extra)
    after, sql = run(store, hunt)
    rows = json.loads(after)["rows"]
    assert len(rows) == len(before) + 1
    assert any(r["name"] == "brand-new.exe" for r in rows)
    assert results.PREFIX not in sql
    assert not stored_tables(store), "the stale table is dropped"
    assert [r["seen"] for r in registry(store)] == [1]
    assert after == run(store, hunt, stored=False)[0]


@pytest.mark.datasets
def test_a_table_being_shown_outlives_new_events(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session showing a stored result (lazily, as the API does) while events arrive and
    another session looks: the table stays for the grace period, then goes."""
    monkeypatch.setattr(results, "GRACE_S", 3600.0)
    hunt = HUNTS["processes"]
    expected = run(store, hunt, stored=False)[0]
    run(store, hunt)
    with Session(store, lazy_display=True, stored_min_events=0) as showing:
        (display,) = showing.execute(hunt)  # stores; its rows are read below
        assert isinstance(display, TableDisplay)
        store.append(store.query("SELECT * REPLACE ('e-late' AS event_id) FROM events LIMIT 1"))
        run(store, hunt)  # another session, after the events grew
        assert display.json_text() == expected
    (shown,) = stored_tables(store)
    assert shown.endswith(f"_{store.stats().total - 1}"), "read a moment ago: kept"
    monkeypatch.setattr(results, "GRACE_S", 0.0)
    run(store, hunt)  # the second DISP at the new count: stores anew
    assert shown not in stored_tables(store), "past the grace period: dropped"
    assert len(stored_tables(store)) == 1


@pytest.mark.datasets
@pytest.mark.parametrize(
    "hunt",
    [
        "p = GET process\nq = p WHERE name = 'cmd.exe'\nDISP q",
        "p = GET process WHERE name = 'cmd.exe'\nq = GET process WHERE pid IN p.parent_pid\nDISP q",
        "n = NEW process [{'name': 'a.exe', 'pid': 1}]\nDISP n",
    ],
)
def test_only_queries_over_the_events_alone_are_stored(store: DuckDBStore, hunt: str) -> None:
    for _ in range(3):
        _, sql = run(store, hunt)
    assert results.PREFIX not in sql
    assert not stored_tables(store)


@pytest.mark.datasets
def test_switched_off(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(results.ENV, "0")
    for _ in range(3):
        _, sql = run(store, HUNTS["processes"])
    assert results.PREFIX not in sql
    assert not stored_tables(store)


@pytest.mark.datasets
def test_small_stores_and_the_cap(store: DuckDBStore) -> None:
    few = results.StoredResults(store, min_events=10**9)
    sql = "SELECT 1 AS first_observed, 'k' AS _key FROM events"
    assert few.table_for(sql) is None and few.table_for(sql) is None
    capped = results.StoredResults(store, min_events=0, max_stored=2)
    made = []
    for i in range(3):
        query = f"SELECT time AS first_observed, event_id AS _key, {i} AS n FROM events"
        assert capped.table_for(query) is None
        made.append(capped.table_for(query))
    assert all(made)
    assert stored_tables(store) == set(made[1:]), "the least recently used one went"
    assert capped.clear() == 2
    assert not stored_tables(store) and not registry(store)


@pytest.mark.datasets
def test_notes_are_capped(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query whose text changes at every run (a time range from now) is noted each time
    and never stored: the notes do not grow without end."""
    monkeypatch.setattr(results, "MAX_NOTES", 5)
    noted = results.StoredResults(store, min_events=0)
    for i in range(12):
        noted.table_for(f"SELECT time AS first_observed, event_id AS _key, {i} AS n FROM events")
    assert len(registry(store)) == 5
    assert not stored_tables(store)


def test_reads_events_only() -> None:
    from sqlglot import parse_one

    cols = ("_key", "first_observed")
    with_cte = "WITH r AS (SELECT * FROM events) SELECT * FROM r JOIN r AS s USING (_key)"
    assert results.reads_events_only(parse_one(with_cte), cols)
    assert not results.reads_events_only(parse_one("SELECT * FROM events, other"), cols)
    assert not results.reads_events_only(parse_one("SELECT * FROM events"), ("_key",))
