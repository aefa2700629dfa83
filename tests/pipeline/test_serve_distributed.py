"""``kestrel serve --broker … --db postgresql://…`` end to end, against the real RabbitMQ and
PostgreSQL (marker ``services``; own vhost and database per test, removed after):

* events POSTed to the API are published to the pipeline (answered after the broker's
  confirm), stored exactly once by a ``kestrel worker`` process (a request sent twice
  included), and the worker's findings appear through the API's findings endpoint;
* with the broker unreachable the API answers 503 with the reason and stores nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from tests.pipeline import distributed_fault as fault

from kestrel.api import Role, create_token
from kestrel.cli.serve import build_app
from kestrel.errors import ConfigError
from kestrel.eval.datasets import generated, scrub
from kestrel.store import open_store
from kestrel.store.management import ManagementStore

pytestmark = pytest.mark.services
HOURS = 12
PARTITIONS = 2
CHUNK = 2_000  # records per request


def _token(pg_url: str) -> dict[str, str]:
    store = open_store(pg_url)
    try:
        token, _ = create_token(ManagementStore(store), Role.ADMIN, "test-sender")
    finally:
        store.close()
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def _serve(pg_url: str, amqp: str, prefix: str) -> Iterator[TestClient]:
    app = build_app(pg_url, broker=amqp, prefix=prefix, partitions=PARTITIONS, skip="sigma")
    with TestClient(app) as client:
        yield client


def _requests(hours: int) -> list[tuple[str, bytes]]:
    """The generated stream as API requests: (format, JSON Lines body) of CHUNK records."""
    by_fmt: dict[str, list[bytes]] = defaultdict(list)
    for rec in generated("all", hours, 3).records:
        by_fmt[rec.fmt].append(scrub(rec.raw))
    return [(fmt, b"\n".join(lines[i : i + CHUNK]))
            for fmt, lines in sorted(by_fmt.items())
            for i in range(0, len(lines), CHUNK)]  # fmt: skip


def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the worker"
        time.sleep(0.5)


def test_serve_broker_events_stored_once_by_a_worker_and_findings_appear(pg_url, broker, tmp_path):
    amqp, prefix = broker
    headers = _token(pg_url)
    expected_ids = set(fault.generated_stream(HOURS).column("event_id").to_pylist())
    worker = fault.spawn(pg_url, amqp, prefix, PARTITIONS, tmp_path / "worker.log")
    store = open_store(pg_url)
    try:
        with _serve(pg_url, amqp, prefix) as client:
            requests = _requests(HOURS)
            accepted = 0
            for fmt, body in requests:
                r = client.post(f"/api/v1/events?format={fmt}", content=body, headers=headers)
                assert r.status_code == 200, r.text
                accepted += r.json()["stored"]
            assert accepted == len(expected_ids)  # every event handed to the pipeline once
            fmt, body = requests[0]  # a sender that did not see the answer sends again
            again = client.post(f"/api/v1/events?format={fmt}", content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["stored"] + again.json()["duplicates"] == again.json()["read"]

            def all_stored() -> bool:
                n = store.query("SELECT count(*) AS n FROM events").column(0)[0].as_py()
                return bool(n >= len(expected_ids))

            _wait(all_stored, 300)

            def findings() -> list[dict[str, object]]:
                page = client.get("/api/v1/findings", headers=headers)
                assert page.status_code == 200, page.text
                items: list[dict[str, object]] = page.json()["items"]
                return items

            _wait(lambda: bool(findings()), 120)
            time.sleep(2.0)  # let the resent request's messages reach the worker too
            _wait(lambda: not _busy(store), 120)
            found = findings()
        counts = store.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
        assert counts.to_pylist() == [{"n": len(expected_ids), "d": len(expected_ids)}]
        stored = set(store.query("SELECT event_id FROM events").column(0).to_pylist())
        assert stored == expected_ids
        in_store = store.query("SELECT count(*) FROM findings").column(0)[0].as_py()
        assert found and len(found) <= in_store
        assert {f["detector"] for f in found} <= _detectors_in_store(store)
    finally:
        worker.kill()
        worker.wait()
        store.close()


def _busy(store) -> bool:
    """Whether the worker committed a detect message in the last two seconds."""
    rows = store.query(
        "SELECT count(*) FROM pipeline_done WHERE done > now() - interval '2 seconds'"
    )
    return bool(rows.column(0)[0].as_py())


def _detectors_in_store(store) -> set[str]:
    return set(store.query("SELECT DISTINCT detector FROM findings").column(0).to_pylist())


def test_serve_broker_unreachable_answers_503_and_stores_nothing(pg_url):
    headers = _token(pg_url)
    # nothing listens on port 1: the broker is unreachable from the start
    with _serve(pg_url, "amqp://guest:guest@127.0.0.1:1/", "unreachable") as client:
        fmt, body = _requests(1)[0]
        r = client.post(f"/api/v1/events?format={fmt}", content=body, headers=headers)
        assert r.status_code == 503, r.text
        assert r.json()["detail"].startswith("event broker unavailable (")
        assert "send it again" in r.json()["detail"]
    store = open_store(pg_url)
    try:
        assert store.query("SELECT count(*) FROM events").column(0)[0].as_py() == 0
    finally:
        store.close()


def test_serve_broker_needs_a_postgresql_store(tmp_path):
    with pytest.raises(ConfigError, match="--broker needs --db postgresql"):
        build_app(str(tmp_path / "k.duckdb"), broker="amqp://guest:guest@127.0.0.1/")
