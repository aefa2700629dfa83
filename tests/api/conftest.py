"""An API over an in-memory store seeded with the agent fixture events and two findings,
and one token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kestrel.api import ApiSettings, MemoryFindings, Role, create_app, create_token
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.ingest import ingest_paths
from kestrel.store import DuckDBStore, Store
from kestrel.store.management import ManagementStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = datetime(2024, 5, 1, 13, 41, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 13, 50, tzinfo=UTC)


@dataclass
class Api:
    """A test client, its store and findings, and a token per role."""

    client: TestClient
    store: Store
    findings: MemoryFindings
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "admin", **kw):
        return self.client.get(path, headers=self.headers(role), **kw)

    def post(self, path: str, role: str = "admin", **kw):
        return self.client.post(path, headers={**self.headers(role), **kw.pop("headers", {})},
                                **kw)  # fmt: skip


def seeded_findings(store: Store) -> list[Finding]:
    """Two findings about web-01 whose evidence is stored agent events."""
    ids = store.query("SELECT event_id FROM events ORDER BY time").column(0).to_pylist()
    web = Entity("host", "web-01")
    return [
        Finding("shell_from_web", web, T0, T1, Severity.HIGH,
                (Signal("parent_is_web_server", "gunicorn", detail="sh under gunicorn"),),
                title="Web server spawned a shell", techniques=("T1190", "T1059.004"),
                evidence=tuple(ids[:3])),
        Finding("gpu_hijack", Entity("workload", "ft-llama-7f3a"), T0, T1, Severity.MEDIUM,
                (Signal("gpu_util.zscore", 7.5, 4.0, "mean 41 std 8", "baseline"),),
                title="GPU far above baseline", techniques=("T1496",)),
    ]  # fmt: skip


def make_api(settings: ApiSettings | None = None, store: Store | None = None) -> Iterator[Api]:
    """The seeded API over ``store`` (default: a new in-memory DuckDB), closed afterwards."""
    store = store if store is not None else DuckDBStore(":memory:")
    ingest_paths([FIXTURES / "agent" / "envelopes.jsonl"], store)
    found = MemoryFindings(seeded_findings(store))
    mgmt = ManagementStore(store)
    tokens = {role.value: create_token(mgmt, role, f"test-{role.value}")[0] for role in Role}
    app = create_app(settings, store=store, findings_source=found)
    with TestClient(app) as client:
        yield Api(client, store, found, tokens)
    store.close()


@pytest.fixture
def findings_for() -> Callable[[DuckDBStore], list[Finding]]:
    """`seeded_findings`, for tests that build their own app."""
    return seeded_findings


@pytest.fixture
def api() -> Iterator[Api]:
    """The seeded API with default settings."""
    yield from make_api()


@pytest.fixture
def small_api() -> Iterator[Api]:
    """The seeded API with tiny intake limits (1 KiB body, 4 KiB decoded, 5 records)."""
    yield from make_api(ApiSettings(max_body_bytes=1024, max_decoded_bytes=4096, max_events=5))
