"""The app factory: `create_app(settings)` builds the FastAPI app over a store.

Everything the routes share is built here once and kept in `app.state.kestrel` (an
`ApiState`), so tests build an app over ``:memory:`` with their own findings source, and
`kestrel serve` builds the same app over a DuckDB file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

from kestrel import __version__
from kestrel.api.deps import (
    ApiState,
    BaselineSource,
    DetectHook,
    FindingsSource,
    reject_unknown_query,
)
from kestrel.api.detection import DetectionLoop, Enrich
from kestrel.api.findings import with_status
from kestrel.api.findings_store import StoreFindings
from kestrel.api.intake import IntakeError
from kestrel.api.metrics import ApiMetrics
from kestrel.api.routes import (
    agents,
    audit,
    entities,
    events,
    findings,
    hunts,
    playbooks,
    policies,
    rules,
    system,
    tokens,
)
from kestrel.api.settings import ApiSettings
from kestrel.store import Store, open_store
from kestrel.store.management import ManagementStore

PREFIX = "/api/v1"
_V1_ROUTERS = (events, findings, entities, agents, tokens, audit, policies, hunts, playbooks, rules)


def create_app(
    settings: ApiSettings | None = None,
    *,
    store: Store | None = None,
    findings_source: FindingsSource | None = None,
    detect: DetectHook | None = None,
    baselines: BaselineSource | None = None,
    enrich: Enrich | None = None,
) -> FastAPI:
    """Build the API (and the dashboard) over ``store``, or over ``settings.db``. With
    ``settings.detect_every``, the detectors run over new events on that interval
    (``enrich`` first, when given)."""
    settings = settings or ApiSettings()
    owned = store is None
    store = store if store is not None else open_store(settings.db)
    state = ApiState(
        settings=settings, store=store, mgmt=ManagementStore(store),
        findings=findings_source if findings_source is not None else StoreFindings(store),
        metrics=ApiMetrics(), detect=detect, baselines=baselines,
    )  # fmt: skip
    state.metrics.watch_findings(lambda: with_status(state))
    app = FastAPI(
        title="Kestrel", version=__version__, lifespan=_lifespan(state, owned, enrich),
        openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None,
        description="Management API: event intake, findings, entities, agents, tokens, audit, "
        "policies, hunts, playbooks, runs and approvals, Sigma rule sets.",
        dependencies=[Depends(reject_unknown_query)],
    )  # fmt: skip
    app.state.kestrel = state
    for module in _V1_ROUTERS:
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(system.router)
    app.add_exception_handler(IntakeError, _intake_error)
    app.add_exception_handler(405, _method_not_allowed)
    _mount_dashboard(app)
    return app


def _lifespan(state: ApiState, owned: bool, enrich: Enrich | None):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        every = state.settings.detect_every
        loop = DetectionLoop(state, every, enrich) if every > 0 else None
        app.state.detection = loop
        if loop is not None:
            loop.start()
        yield
        if loop is not None:
            await loop.stop()
        state.close()
        if owned:  # a store the caller passed in is the caller's to close
            state.store.close()

    return lifespan


async def _intake_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntakeError)
    return JSONResponse({"detail": exc.detail, "rejections": exc.rejections}, exc.status)


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with an ``Allow`` header naming every method of the path (Starlette names only
    those of the first route that matched, and a path has one route per method)."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\0"})
        if match is Match.PARTIAL:
            allowed |= getattr(route, "methods", None) or set()
    headers = {"Allow": ", ".join(sorted(allowed))}
    return JSONResponse({"detail": "Method Not Allowed"}, 405, headers=headers)


def _mount_dashboard(app: FastAPI) -> None:
    """The dashboard pages and their static files (kestrel.api.dashboard)."""
    from kestrel.api import dashboard

    dashboard.mount(app)
