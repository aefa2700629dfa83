"""``/api/v1/playbooks`` and ``/api/v1/runs``: the response playbooks, their runs, and the
approval a gated run waits for. Analysts read; only admins approve, because approving
carries the run's actions out (isolate a host, disable a key) at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from kestrel.api import respond
from kestrel.api.deps import Admin, Staff, State
from kestrel.api.routes import AUTH_ERRORS, NOT_FOUND
from kestrel.api.schemas import PlaybookOut, Problem, RunOut
from kestrel.errors import PlaybookError
from kestrel.respond.runs import RunStatus

router = APIRouter(tags=["playbooks"], responses=AUTH_ERRORS)
RunId = Annotated[str, Path(pattern=r"^r-[0-9a-f]{12}$")]
_BAD_FILES: dict[int | str, dict[str, object]] = {
    503: {"model": Problem, "description": "A configured playbook file does not validate"},
}
_CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"model": Problem, "description": "The run is not waiting for approval"},
}


@router.get("/playbooks", response_model=list[PlaybookOut], responses=_BAD_FILES)
def list_playbooks(state: State, who: Staff) -> list[PlaybookOut]:
    """The server's playbooks (`kestrel serve --playbooks`)."""
    try:
        return respond.playbooks(state)
    except PlaybookError as exc:
        raise HTTPException(503, str(exc)) from None


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    state: State, who: Staff, status: Annotated[RunStatus | None, Query()] = None
) -> list[RunOut]:
    """Playbook runs, newest first (``?status=pending_approval``: those waiting)."""
    return respond.runs(state, status)


@router.post("/runs/{run_id}/approve", response_model=RunOut,
             responses={**NOT_FOUND, **_CONFLICT})  # fmt: skip
def approve_run(run_id: RunId, state: State, who: Admin) -> RunOut:
    """Approve a waiting run and carry it out now (audited)."""
    try:
        return respond.approve(state, run_id, who)
    except respond.RunNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except respond.RunStateError as exc:
        raise HTTPException(409, str(exc)) from None
