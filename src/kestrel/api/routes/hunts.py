"""``/api/v1/hunts``: run hunt text over the server's store (analysts and admins). A hunt
that cannot run is a 422 with the line and column, like `kestrel hunt` prints it; every
hunt run is audited, since it reads whatever the store holds."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kestrel.api.deps import Staff, State
from kestrel.api.hunts import HuntRunError, run_hunt
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import HuntProblem, HuntRequest, HuntResult

router = APIRouter(prefix="/hunts", tags=["hunts"], responses=AUTH_ERRORS)
_ERRORS: dict[int | str, dict[str, object]] = {
    422: {
        "model": HuntProblem,
        "description": "A hunt that cannot run (line, column, why; "
        "reason invalid), or one stopped at the server's time limit (reason time_limit)",
    },
}


@router.post("", response_model=HuntResult, responses=_ERRORS)
def post_hunt(body: HuntRequest, state: State, who: Staff) -> HuntResult | JSONResponse:
    """Run a hunt; tables come back capped at ``max_rows`` rows with their total."""
    with state.lock:
        state.mgmt.audit(who.actor, "hunt.run", "store", {"text": body.text[:2000]})
    try:
        shown = run_hunt(state, body.text, body.max_rows)
    except HuntRunError as exc:
        return JSONResponse(exc.as_json(), 422)
    return HuntResult.model_validate({"displays": shown})
