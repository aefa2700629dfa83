"""Hunts do not hold up intake, and a hunt past the time limit is stopped.

A hunt runs on a connection of its own (a DuckDB cursor, a second PostgreSQL connection),
not under the store lock the intake writer appends under; a timer interrupts its query (a
PostgreSQL cancel request) at ``ApiSettings.hunt_seconds`` and the client gets a 422 with
``reason: time_limit``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from tests.api.conftest import Api, make_api
from tests.services import temporary_database

from kestrel.api import ApiSettings
from kestrel.api import hunts as api_hunts
from kestrel.api.hunts import HuntRunError, run_hunt
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore, Store, open_store

# time limits of 0.2-1.5 s: run alone, not beside other tests
pytestmark = pytest.mark.serial

# One command line per event: GROUP BY command_line hashes 300,000 distinct strings, about
# a second of DuckDB work on the shared test machine (more under load).
SLOW = (
    "a = GET process WHERE name = 'python3'\n"
    "g = GROUP a BY command_line WITH NUNIQUE(pid) AS n\n"
    "DISP g"
)
ROWS = 300_000


def _fill(store: Store, rows: int) -> None:
    store.execute(
        'INSERT INTO events (event_id, time, "class", activity, source, raw, process_pid, '
        "process_name, process_cmdline, host, entity_id, entity_type) "
        "SELECT 'slow-' || i, TIMESTAMPTZ '2024-05-01 00:00:00+00' + i * INTERVAL 1 SECOND, "
        "'process', 'create', 'agent', '{}', i, 'python3', 'python3 -c ' || i, "
        f"'h' || (i % 7), 'h' || (i % 7), 'host' FROM range({rows}) t(i)"
    )


@pytest.fixture
def limited_api() -> Iterator[Api]:
    """The seeded API plus 300,000 process events, hunts limited to 0.2 s."""
    for api in make_api(ApiSettings(hunt_seconds=0.2)):
        _fill(api.store, ROWS)
        yield api


def test_a_long_hunt_is_stopped_at_the_limit(
    limited_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped, not run to its end and then refused: after the timer fired no query of the
    hunt's connection completes (checked on the calls, not on wall time, which a loaded
    machine makes useless: in CI the full hunt took 0.80 s and the stopped one 0.92 s,
    because the timer fired between two queries and DuckDB's interrupt was lost then)."""
    state = limited_api.client.app.state.kestrel  # type: ignore[attr-defined]
    full = run_hunt(state, SLOW, seconds=60)  # the same hunt with room: it completes
    assert full[0]["title"] == "g" and full[0]["total"] >= ROWS

    calls: list[str] = []  # on the hunt's connection: "interrupt", "done" per completed query
    real = {name: getattr(DuckDBStore, name) for name in ("query", "execute", "interrupt")}

    def spy(name: str) -> Any:
        def call(self: DuckDBStore, *args: Any, **kwargs: Any) -> Any:
            mine = self is not limited_api.store  # the server's own store also audits
            if name == "interrupt":
                calls.append("interrupt")
                return real[name](self, *args, **kwargs)
            answer = real[name](self, *args, **kwargs)
            if mine:
                calls.append("done")
            return answer

        return call

    for name in real:
        monkeypatch.setattr(DuckDBStore, name, spy(name))
    got = limited_api.post("/api/v1/hunts", role="analyst", json={"text": SLOW})
    assert got.status_code == 422, got.text
    body = got.json()
    assert body["reason"] == "time_limit" and "0.2 s" in body["detail"], body
    assert "interrupt" in calls, "the time limit was reported without stopping the hunt"
    after = calls[calls.index("interrupt") + 1 :]
    # the query in flight may finish as the interrupt arrives; none may start after it
    assert after.count("done") <= 1, f"queries completed after the time limit: {calls}"
    monkeypatch.undo()
    # the store goes on answering: the interrupted connection was the hunt's own
    again = run_hunt(state, "p = GET process WHERE name = 'sh'\nDISP p", seconds=60)
    assert again[0]["total"] > 0
    assert limited_api.store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()


def test_an_interrupted_connection_refuses_later_queries() -> None:
    """The timer may fire while the hunt works in Python between two queries: the next
    query must raise, not run to its end."""
    store = DuckDBStore()
    reader = store.cursor()
    reader.interrupt()  # no query running now
    with pytest.raises(duckdb.InterruptException):
        reader.query("SELECT 1")
    with pytest.raises(duckdb.InterruptException):
        reader.execute("SELECT 1")
    reader.close()
    assert store.query("SELECT 1 AS one").column("one")[0].as_py() == 1  # the store is not
    store.close()


def test_a_hunt_within_the_limit_is_not_interrupted_later(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer of a finished hunt fires late (simulated: called by hand, so no wall-time
    bound that a loaded machine could break): it must neither mark the hunt expired nor
    interrupt the store."""
    state = api.client.app.state.kestrel  # type: ignore[attr-defined]
    made: list[api_hunts.Deadline] = []

    class Recorded(api_hunts.Deadline):
        def __init__(self, store: Any, seconds: float) -> None:
            super().__init__(store, seconds)
            made.append(self)

    monkeypatch.setattr(api_hunts, "Deadline", Recorded)
    interrupted: list[bool] = []
    monkeypatch.setattr(DuckDBStore, "interrupt", lambda self: interrupted.append(True))
    shown = run_hunt(state, "p = GET process\nDISP p ATTR name", seconds=60)
    assert shown[0]["total"] > 0 and len(made) == 1
    made[0]._fire()  # the timer, firing after the hunt ended
    assert not made[0].expired and not interrupted
    assert state.store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() > 0


def test_the_time_limit_error_says_why(api: Api) -> None:
    err = api_hunts.Deadline(api.store, 0.0)
    time.sleep(0.05)
    with pytest.raises(HuntRunError) as caught:
        err.check()
    assert caught.value.as_json()["reason"] == "time_limit"
    err.cancel()


def test_hunt_problem_reason_is_in_the_openapi_schema(api: Api) -> None:
    spec = api.client.get("/api/v1/openapi.json").json()
    problem = spec["components"]["schemas"]["HuntProblem"]["properties"]["reason"]
    assert problem["enum"] == ["invalid", "time_limit"]


@pytest.fixture(params=[30.0])
def pg_api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """The seeded API over a PostgreSQL store of its own (dropped afterwards); hunts
    limited to the param's seconds (30 unless a test sets it indirectly)."""
    with temporary_database() as url:
        yield from make_api(ApiSettings(hunt_seconds=request.param), open_store(url))


def test_intake_proceeds_while_a_hunt_runs(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hunt pauses inside its first statement until an intake request has been stored;
    were the hunt holding the store lock (as it did), the intake would wait for the hunt
    and the hunt for the intake, and both would time out here."""
    _intake_during_a_paused_hunt(api, monkeypatch)


@pytest.mark.services
def test_intake_proceeds_while_a_hunt_runs_over_postgres(
    pg_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same over PostgreSQL: the hunt runs on a second connection (it ran under the
    store lock, and this test deadlocked until its 10 s wait gave up)."""
    _intake_during_a_paused_hunt(pg_api, monkeypatch)


@pytest.mark.services
@pytest.mark.parametrize("pg_api", [0.5], indirect=True)
def test_a_long_hunt_over_postgres_is_cancelled_at_the_limit(
    pg_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement running past the limit is cancelled on the server (not waited for and
    checked after): the hunt's first statement sleeps 30 s in PostgreSQL, the answer is a
    422 ``time_limit`` long before that, and the store and a later hunt go on."""

    class SleepingSession(Session):
        def run(self, statement: Any) -> Any:
            self.store.query("SELECT pg_sleep(30)")
            return super().run(statement)

    monkeypatch.setattr(api_hunts, "Session", SleepingSession)
    started = time.monotonic()
    got = pg_api.post("/api/v1/hunts", role="analyst", json={"text": "p = GET process\nDISP p"})
    took = time.monotonic() - started
    assert got.status_code == 422, got.text
    assert got.json()["reason"] == "time_limit", got.json()
    assert took < 20, f"the sleeping statement was not cancelled ({took:.1f} s)"
    monkeypatch.undo()
    state = pg_api.client.app.state.kestrel  # type: ignore[attr-defined]
    again = run_hunt(state, "p = GET process\nDISP p", seconds=60)  # room on a loaded box
    assert again[0]["total"] > 0
    n = pg_api.store.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()
    assert n > 0


def _intake_during_a_paused_hunt(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = threading.Event()
    in_hunt = threading.Event()

    class PausingSession(Session):
        def run(self, statement: Any) -> Any:
            in_hunt.set()
            if not stored.wait(10):
                raise AssertionError("intake did not go through while the hunt ran")
            return super().run(statement)

    monkeypatch.setattr(api_hunts, "Session", PausingSession)
    result: dict[str, Any] = {}

    def hunt() -> None:
        got = api.post("/api/v1/hunts", json={"text": "p = GET process\nDISP p ATTR name"})
        result["hunt"] = got

    runner = threading.Thread(target=hunt)
    runner.start()
    assert in_hunt.wait(10)
    envelope = {"agent_id": "agent-during-hunt", "event_type": "process",
                "timestamp": 1714570867000, "payload": {"action": "start", "pid": 4242,
                                                         "name": "during-hunt"}}  # fmt: skip
    got = api.post("/api/v1/events", role="agent", content=json.dumps(envelope).encode())
    assert got.status_code == 200 and got.json()["stored"] == 1, got.text
    stored.set()
    runner.join(20)
    assert not runner.is_alive()
    assert result["hunt"].status_code == 200, result["hunt"].text
    count = api.store.query("SELECT count(*) AS n FROM events WHERE process_name = 'during-hunt'")
    assert count.column("n")[0].as_py() == 1
