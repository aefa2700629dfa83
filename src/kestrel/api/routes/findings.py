"""``/api/v1/findings``: list with filters, detail with evidence, the status workflow."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BeforeValidator

from kestrel.api import findings as service
from kestrel.api.deps import FindingQuery, Staff, State
from kestrel.api.routes import AUTH_ERRORS, NOT_FOUND
from kestrel.api.schemas import (
    FindingDetail,
    FindingOut,
    FindingPage,
    Problem,
    Status,
    StatusUpdate,
)
from kestrel.findings import Severity

router = APIRouter(prefix="/findings", tags=["findings"], responses=AUTH_ERRORS)

FindingId = Annotated[str, Path(pattern="^[0-9a-f]{1,64}$", description="The finding's id")]
SEVERITIES = "^(info|low|medium|high|critical)$"
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    """Pydantic reads ``start=0.5`` as a Unix time; the schema promises ISO 8601 only."""
    if isinstance(value, str) and not _ISO.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2024-05-01T13:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


@router.get("", response_model=FindingPage)
def list_findings(
    state: State,
    who: Staff,
    severity: Annotated[str | None, Query(pattern=SEVERITIES, description="Minimum")] = None,
    detector: Annotated[str | None, Query(max_length=200)] = None,
    technique: Annotated[str | None, Query(max_length=50, description="Prefix: T1496")] = None,
    entity: Annotated[str | None, Query(max_length=500, description="id or type:id")] = None,
    start: Annotated[IsoTime | None, Query(description="Last seen at or after")] = None,
    end: Annotated[IsoTime | None, Query(description="First seen before")] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FindingPage:
    """Findings, newest first, filtered by severity, detector, technique, entity, time and
    status."""
    query = FindingQuery(
        min_severity=Severity.parse(severity) if severity else None, detector=detector,
        technique=technique, entity=entity, start=start, end=end,
    )  # fmt: skip
    return service.page(state, query, status, limit, offset)


@router.get("/{finding_id}", response_model=FindingDetail, responses=NOT_FOUND)
def get_finding(finding_id: FindingId, state: State, who: Staff) -> FindingDetail:
    """One finding: signals with values and thresholds, evidence events, status history."""
    found = service.detail(state, finding_id)
    if found is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return found


@router.post(
    "/{finding_id}/status",
    response_model=FindingOut,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "Not allowed from here"}},
)
def set_status(finding_id: FindingId, update: StatusUpdate, state: State, who: Staff) -> FindingOut:
    """Move a finding along new → acknowledged → resolved / false_positive (with a note).
    A false positive becomes a suppression for that detector, entity and signal set
    (for ``suppress_days``, or until removed): detection does not raise it again."""
    try:
        changed = service.change_status(state, finding_id, update, who)
    except service.WorkflowError as exc:
        raise HTTPException(409, str(exc)) from exc
    if changed is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return changed
