"""``/api/v1/audit``: the append-only audit log (status changes, tokens, actions, policies)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from kestrel.api.deps import Staff, State
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import AuditLine

router = APIRouter(prefix="/audit", tags=["audit"], responses=AUTH_ERRORS)


@router.get("", response_model=list[AuditLine])
def audit_log(
    state: State, who: Staff, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[AuditLine]:
    """The newest audit lines first."""
    with state.lock:
        rows = state.mgmt.audit_log(limit)
    return [AuditLine(**{**r, "detail": json.loads(r["detail"])}) for r in rows]
