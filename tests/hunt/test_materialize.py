"""How GET builds entities (pruned aggregates, parents only when new) and lazy DISP rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.hunt.conftest import T0

from kestrel.hunt import compile as compile_module
from kestrel.hunt import entity_sql
from kestrel.hunt import session as session_module
from kestrel.hunt.display import TableDisplay, to_json
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore


@pytest.fixture
def lazy(hunt_store: DuckDBStore) -> Iterator[Session]:
    with Session(hunt_store, now=T0.replace(hour=13), lazy_display=True) as s:
        yield s


def test_empty_attributes_are_null_columns_not_aggregates(session: Session) -> None:
    session.execute("p = GET process")
    assert "MIN(md5)" not in session.info("p").sql  # no event has a hash
    assert session.variable("p").column("md5").null_count == session.count("p")


def test_a_process_seen_acting_is_observed_through_its_own_events(session: Session) -> None:
    session.execute("p = GET process WHERE uid = 'g-cmd'")
    row = session.variable("p").to_pylist()[0]
    # acting in one event; named as a parent in two more, which do not add to its count
    assert (row["number_observed"], row["first_observed"]) == (1, T0.replace(minute=1))
    assert row["command_line"] == "cmd.exe /c whoami"


def test_a_process_named_only_as_parent_is_still_a_process(session: Session) -> None:
    session.execute("p = GET process WHERE name = 'wininit.exe'")
    assert session.variable("p").column("pid").to_pylist() == [4]


def test_lazy_disp_equals_eager(session: Session, lazy: Session) -> None:
    hunt = "p = GET process\nDISP p ATTR pid, name, first_observed"
    eager, late = session.execute(hunt)[0], lazy.execute(hunt)[0]
    assert isinstance(eager, TableDisplay) and isinstance(late, TableDisplay)
    assert late.table.equals(eager.table)
    rows = json.loads(to_json([late]))[0]["rows"]
    assert [r["pid"] for r in rows] == eager.table.column("pid").to_pylist()
    assert rows[0]["first_observed"].startswith("2024-05-01T12:")


def test_lazy_disp_pushes_the_page_into_sql(lazy: Session) -> None:
    late = lazy.execute("p = GET process\nDISP p ATTR pid LIMIT 3")[0]
    assert isinstance(late, TableDisplay)
    page, total = late.head(2)
    assert (page.num_rows, total) == (2, 3)
    assert late.head(10)[0].num_rows == 3


def test_lazy_json_plans_its_schema_once(lazy: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = lazy.execute("p = GET process\nDISP p ATTR pid, name")[0]
    assert isinstance(shown, TableDisplay)
    asked: list[str] = []
    query = lazy.store.query

    def counted(sql: str, *args: Any) -> Any:
        asked.append(sql)
        return query(sql, *args)

    monkeypatch.setattr(lazy.store, "query", counted)
    rows = json.loads(to_json([shown]))[0]
    assert rows["columns"] == ["pid", "name"] and len(rows["rows"]) == 8
    assert sum(sql.endswith("LIMIT 0") for sql in asked) == 1


def test_lazy_disp_survives_reassignment(lazy: Session) -> None:
    out = lazy.execute("p = GET process WHERE pid = 500\nDISP p ATTR pid\np = GET process")
    assert isinstance(out[0], TableDisplay)
    assert out[0].table.column("pid").to_pylist() == [500]


def test_disp_limit_zero_shows_no_rows(session: Session) -> None:
    out = session.execute("p = GET process\nDISP p ATTR pid LIMIT 0")
    assert isinstance(out[0], TableDisplay) and out[0].table.num_rows == 0
    assert json.loads(to_json(out))[0]["rows"] == []


def test_two_phase_entities_equal_one_group(
    session: Session, hunt_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    hunt = "p = GET process\nq = FIND process CREATED p\nr = GET process WHERE host = 'h2'"
    session.execute(hunt)
    fast = [sorted(session.variable(v).to_pylist(), key=repr) for v in "pqr"]

    def grouped(*args: Any) -> Any:
        return entity_sql.entity_query(args[0], args[1], args[2], args[3], args[4], row_ids=False)

    monkeypatch.setattr(compile_module, "entity_query", grouped)
    with Session(hunt_store, now=T0.replace(hour=13)) as plain:
        plain.execute(hunt)
        assert [sorted(plain.variable(v).to_pylist(), key=repr) for v in "pqr"] == fast
    assert all(fast)


def test_find_matches_the_keys_of_a_view_it_reads_first_as_its_entities(
    session: Session, hunt_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each FIND reads its input first (a second read stores the variable as a table)
    hunt = ("p = GET process\nq = FIND process CREATED p\n"
            "p2 = GET process\nk = FIND process CHILD OF p2\ng = FIND process CHILD OF k\n"
            "c = GET process WHERE host = 'h1'\nn = FIND network-traffic CREATED BY c\n"
            "c2 = GET process WHERE host = 'h1'\nf = FIND file LINKED c2\n"
            "c3 = GET process\nu = FIND user-account OWNED c3\n"
            "l = GET process LIMIT 2\nm = FIND process CREATED l")  # fmt: skip
    session.execute(hunt)
    # the first FIND over p matches p's keys straight from the events, not p's view
    assert session.info("p").table not in session.info("q").sql
    assert session.info("l").table in session.info("m").sql  # LIMIT: the entities decide
    names = ("q", "k", "g", "n", "f", "u", "m")
    from_keys = [sorted(session.variable(v).to_pylist(), key=repr) for v in names]
    monkeypatch.setattr(session_module, "KEYS", "no such entry")  # every FIND reads the view
    with Session(hunt_store, now=T0.replace(hour=13)) as plain:
        plain.execute(hunt)
        assert plain.info("p").table in plain.info("q").sql
        assert [sorted(plain.variable(v).to_pylist(), key=repr) for v in names] == from_keys
    assert all(from_keys)


def test_entity_queries_say_the_columns_the_engine_gives(session: Session) -> None:
    # GET / FIND variables take their column names from the compiler, not a LIMIT 0 query
    session.execute("p = GET process\nq = FIND process CREATED p\nl = GET process LIMIT 1\n"
                    "n = FIND network-traffic CREATED BY p\ni = GET ipv4-addr\n"
                    "d = FIND file LINKED p\nu = GET user-account WHERE user_name = 'bob'\n"
                    "c = GET cloud-principal\nh = GET x-oca-asset")  # fmt: skip
    for name in "pqlnidu" + "ch":
        info = session.info(name)
        given = session.store.query(f'SELECT * FROM "{info.table}" LIMIT 0').column_names
        assert list(info.columns) == given, name


def test_a_variable_read_twice_is_stored_once(session: Session) -> None:
    session.execute("p = GET process\nq = FIND process CREATED p")
    assert not _stored(session, "p")  # FIND read the view
    session.execute("DISP p ATTR pid\nDISP p ATTR name")
    assert _stored(session, "p")


def _stored(session: Session, name: str) -> bool:
    table = session.info(name).table + "_t"
    found = session.store.query(
        f"SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = '{table}'"
    )
    return bool(found.column("n")[0].as_py())


@pytest.mark.parametrize("rows", [0, 1, 3, 20_000, 20_001, 70_000])
def test_json_batches_joined_the_same_by_python_and_arrow(rows: int) -> None:
    # small batches are joined by Python (no pyarrow.compute import), large ones by Arrow
    import pyarrow as pa

    from kestrel.hunt import rows as rows_module

    texts = [json.dumps({"i": i, "s": "é,}x"}) for i in range(rows)]
    column = pa.chunked_array(
        [pa.array(texts[: rows // 2], pa.string()), pa.array(texts[rows // 2 :], pa.string())]
    )
    joined = rows_module._joined(column)
    assert joined == ",".join(texts).encode()
    assert json.loads(b"[" + joined + b"]") == [json.loads(t) for t in texts]


@pytest.mark.parametrize("rows", [1, 2, 65_536, 65_537, 150_000])
def test_json_rows_streamed_as_arrow_holds_them(rows: int) -> None:
    # each row's text carries its comma and a batch goes out as one view of Arrow's data
    # buffer: over several batches (65,536 rows each) the text is the rows, in order, one
    # comma between two rows and none after the last
    import pyarrow as pa
    from sqlglot import exp

    from kestrel.hunt.rows import QueryRows

    names = [f'p{i},"}}é\\' if i % 3 else None for i in range(rows)]
    store = DuckDBStore(":memory:")
    try:
        store.register("t", pa.table({"i": list(range(rows)), "name": names}))
        query = exp.select("i", "name").from_("t").order_by("i")
        chunks = list(QueryRows(store, query).json_chunks())
    finally:
        store.close()
    text = b"".join(chunks)
    assert len(chunks) == -(-rows // 65_536)
    assert text == ",".join(json.dumps({"i": i, "name": n}, ensure_ascii=False,
                                       separators=(",", ":"))
                            for i, n in enumerate(names)).encode()  # fmt: skip


@pytest.mark.parametrize("kind", ["string", "large_string"])
def test_a_batch_text_is_its_rows_only(kind: str) -> None:
    # a slice of an Arrow array shares its parent's buffer: only its own rows are shown
    import pyarrow as pa

    from kestrel.hunt.rows import _text

    array = pa.array(["a,", "bé,", "", "cd,", "e,"], getattr(pa, kind)())
    assert bytes(_text(array)) == "a,bé,cd,e,".encode()
    assert bytes(_text(array.slice(1, 3))) == "bé,cd,".encode()
    assert bytes(_text(array.slice(4, 1))) == b"e,"
    assert bytes(_text(pa.chunked_array([array.slice(0, 2), array.slice(3, 2)]))) == (
        "a,bé,cd,e,".encode()
    )


def test_json_times_are_utc_iso_text() -> None:
    # DuckDB writes the times (`make_timestamp(epoch_us(t))`, no ICU): the same text as
    # Python's isoformat in UTC, before 1970 and with another session time zone too
    from datetime import UTC, datetime, timedelta, timezone

    import pyarrow as pa
    from sqlglot import exp

    from kestrel.hunt.rows import QueryRows

    times = [datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
             None, datetime(1, 1, 1, tzinfo=UTC)]  # fmt: skip
    store = DuckDBStore(":memory:")
    try:
        store.execute("SET TimeZone = 'America/New_York'")
        store.register("t", pa.table({"t": pa.array(times, pa.timestamp("us", "UTC"))}))
        rows = QueryRows(store, exp.select("t").from_("t"))
        shown = json.loads(b"[" + b"".join(rows.json_chunks()) + b"]")
    finally:
        store.close()
    expected = [None if t is None else t.astimezone(UTC).isoformat(timespec="microseconds")
                for t in times]  # fmt: skip
    assert [row["t"] for row in shown] == expected
