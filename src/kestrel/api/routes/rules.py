"""``/api/v1/rules``: the server's Sigma rule sets and whether the detectors load each.
Switching is a policy change (``PUT /api/v1/policies/sigma.rule_sets``), so it is audited
and kept with the other policies."""

from __future__ import annotations

from fastapi import APIRouter

from kestrel.api import rules
from kestrel.api.deps import Staff, State
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import RuleSetOut

router = APIRouter(prefix="/rules", tags=["rules"], responses=AUTH_ERRORS)


@router.get("", response_model=list[RuleSetOut])
def list_rule_sets(state: State, who: Staff) -> list[RuleSetOut]:
    """Every rule set ($KESTREL_SIGMA_RULES) with its switch."""
    return rules.rule_sets(state)
