"""Schemathesis against the published OpenAPI document: for every operation, generated
requests (valid and invalid) never get a 5xx, and every answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from kestrel.api import PREFIX, MemoryFindings, Role, create_app, create_token
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore


class _Target:
    """An ASGI app that forwards to ``app``: schemathesis needs an app when it reads the
    schema (at import), but the store behind the app under test must be opened and closed
    by a fixture (a DuckDB connection still alive at exit is reported as a leak)."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the `served` fixture sets the app under test"
        await self.app(scope, receive, send)


def _load_schema(target: _Target) -> OpenApiSchema:
    store = DuckDBStore(":memory:")
    target.app = create_app(store=store, findings_source=MemoryFindings())
    try:
        return schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", target)
    finally:
        target.app = None
        store.close()


TARGET = _Target()
schema = _load_schema(TARGET)


@schemathesis.serializer("application/x-ndjson", "application/gzip")
def _as_bytes(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """JSON Lines and gzip bodies are opaque strings in the schema: send them as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FastAPI, str]]:
    """The app under test over a fresh store, and an admin token for it."""
    store = DuckDBStore(":memory:")
    token, _ = create_token(ManagementStore(store), Role.ADMIN, "schemathesis")
    TARGET.app = create_app(store=store, findings_source=MemoryFindings())
    yield TARGET.app, token
    TARGET.app = None
    store.close()


@pytest.mark.slow
@schema.parametrize()
# derandomize: the same examples every run (a CI gate must not flicker). Random runs once
# flagged a GET with only junk query keys (`?=&%C3%B9...`) as "schema-violating data
# accepted" without naming the violating part; undeclared query keys are ignored by design.
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], served: Any) -> None:
    _, token = served
    # Intake bodies are checked by the ingest readers, not by JSON Schema: a schema-valid
    # body may hold no event a reader knows (422 by design), and the readers sniff the
    # content whatever the declared type (a JSON array sent as JSON Lines is still read).
    intake = case.path.endswith("/events")
    excluded: list[Any] = [positive_data_acceptance, negative_data_rejection] if intake else []
    # Likewise hunt text is checked by the hunt parser: schema-valid text that is not a
    # hunt is a 422 with line and column by design.
    if case.path.endswith("/hunts"):
        excluded = [positive_data_acceptance]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=excluded,
    )
