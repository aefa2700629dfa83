"""Detection on intake: with ``detect_every`` the server turns events it receives into
findings on its own; with 0 it does not run detection at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from tests.api.cloud_events import T9, denied_storm, send

from kestrel.api import ApiSettings, Role, create_app, create_token
from kestrel.api.detection import DetectionLoop
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore


@contextmanager
def _client(store: DuckDBStore, every: float) -> Iterator[tuple[TestClient, dict[str, str]]]:
    token, _ = create_token(ManagementStore(store), Role.ADMIN, "t")
    with TestClient(create_app(ApiSettings(detect_every=every), store=store)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def _wait_for_findings(client: TestClient, h: dict[str, str], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = client.get("/api/v1/findings", headers=h).json()["items"]
        if items:
            return items
        time.sleep(0.1)
    raise AssertionError("no finding within the timeout")


def test_events_sent_to_the_server_become_findings_without_kestrel_detect(store: DuckDBStore):
    with _client(store, 0.05) as (client, h):
        send(client, h, denied_storm(T9))
        [item] = _wait_for_findings(client, h)
        assert item["detector"] == "api_abuse"
        metrics = client.get("/metrics", headers=h).text
        assert 'kestrel_stage_seconds_count{stage="detect"}' in metrics


def test_detect_every_zero_turns_it_off(store: DuckDBStore):
    with _client(store, 0) as (client, h):
        assert client.app.state.detection is None  # type: ignore[attr-defined]
        send(client, h, denied_storm(T9))
        assert client.get("/api/v1/findings", headers=h).json()["items"] == []


def test_a_failing_run_does_not_stop_the_loop(store: DuckDBStore):
    with _client(store, 0.05) as (client, h):
        loop: DetectionLoop = client.app.state.detection  # type: ignore[attr-defined]
        real = loop.run_once
        calls = {"n": 0}

        def flaky():
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("store went away")
            return real()

        loop.run_once = flaky  # type: ignore[method-assign]
        send(client, h, denied_storm(T9))
        assert _wait_for_findings(client, h)
