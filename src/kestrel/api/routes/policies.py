"""``/api/v1/policies``: named settings the pipeline and responders read (detector
thresholds, enrichers, response permissions). Analysts read them; admins change them, and
every change is audited with its old and new value."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from kestrel.api import rules
from kestrel.api.deps import Admin, Staff, State
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import PolicyValue

router = APIRouter(prefix="/policies", tags=["policies"], responses=AUTH_ERRORS)
PolicyName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.\-]{0,99}$")]


@router.get("", response_model=dict[str, Any])
def list_policies(state: State, who: Staff) -> dict[str, Any]:
    """Every policy's current value."""
    with state.lock:
        return state.mgmt.policies()


@router.put("/{name}", response_model=dict[str, Any])
def put_policy(name: PolicyName, body: PolicyValue, state: State, who: Admin) -> dict[str, Any]:
    """Set a policy (history is kept; the newest value wins). ``sigma.rule_sets`` switches
    Sigma rule sets: ``{"value": {"<path>": false}}``."""
    if name == rules.POLICY:
        try:
            rules.check_value(body.value)
        except rules.RulePolicyError as exc:
            raise HTTPException(422, str(exc)) from None
    with state.lock:
        old = state.mgmt.policies().get(name)
        state.mgmt.set_policy(name, body.value, who.actor)
        state.mgmt.audit(who.actor, "policy.set", name, {"old": old, "new": body.value})
        return state.mgmt.policies()
