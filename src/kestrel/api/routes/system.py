"""``/healthz`` (no token: the process is up), ``/readyz`` (any token: the store answers)
and ``/metrics`` (Prometheus text; admin or analyst token, as a bearer credential)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from kestrel.api.deps import Anyone, Staff, State
from kestrel.api.metrics import CONTENT_TYPE
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import Problem, Ready
from kestrel.errors import KestrelError

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=dict[str, str])
def healthz() -> dict[str, str]:
    """Liveness: answers while the process runs."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={**AUTH_ERRORS, 503: {"model": Problem, "description": "Store not answering"}},
)
def readyz(state: State, who: Anyone) -> Ready:
    """Readiness: the store answers a query."""
    try:
        with state.lock:
            events = int(state.store.query("SELECT count(*) AS n FROM events").to_pylist()[0]["n"])
    except KestrelError as exc:
        raise HTTPException(503, f"store not ready: {exc}") from exc
    return Ready(ready=True, events=events)


@router.get(
    "/metrics",
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(state: State, who: Staff) -> Response:
    """Prometheus text exposition."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
