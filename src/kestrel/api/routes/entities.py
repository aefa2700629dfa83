"""``/api/v1/entities``: who the events are about, with profile and timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from kestrel.api import entities as service
from kestrel.api.deps import Staff, State
from kestrel.api.routes import AUTH_ERRORS, NOT_FOUND
from kestrel.api.schemas import EntityProfile, EntitySummary, TimelinePoint

router = APIRouter(prefix="/entities", tags=["entities"], responses=AUTH_ERRORS)

EntityType = Annotated[str, Path(max_length=100, description="host, principal, workload ...")]
EntityId = Annotated[str, Path(max_length=1000)]


@router.get("", response_model=list[EntitySummary])
def list_entities(
    state: State,
    who: Staff,
    type: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EntitySummary]:
    """Entities by event count, with how many findings each has."""
    return service.summaries(state, limit, type)


@router.get("/{entity_type}/{entity_id}", response_model=EntityProfile, responses=NOT_FOUND)
def get_entity(
    entity_type: EntityType, entity_id: EntityId, state: State, who: Staff
) -> EntityProfile:
    """One entity: events by class, sources, hosts, baselines and findings."""
    found = service.profile(state, entity_type, entity_id)
    if found is None:
        raise HTTPException(404, f"no entity {entity_type}:{entity_id}")
    return found


@router.get("/{entity_type}/{entity_id}/timeline", response_model=list[TimelinePoint])
def get_timeline(
    entity_type: EntityType,
    entity_id: EntityId,
    state: State,
    who: Staff,
    bucket: Annotated[str, Query(pattern="^(minute|hour|day)$")] = "hour",
) -> list[TimelinePoint]:
    """Event counts per bucket and class (an empty list for an unknown entity)."""
    return service.timeline(state, entity_type, entity_id, bucket)
