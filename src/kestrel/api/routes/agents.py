"""``/api/v1/agents``: the inventory, and the actions queued for each agent.

An agent token sees only ``/agents/me/actions`` (its own queue); analysts read the
inventory; only admins queue actions (every queued action is audited).
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from kestrel.api.deps import Admin, Agent, Staff, State
from kestrel.api.routes import AUTH_ERRORS, NOT_FOUND
from kestrel.api.schemas import ActionCreate, ActionOut, AgentOut

router = APIRouter(prefix="/agents", tags=["agents"], responses=AUTH_ERRORS)
AgentId = Annotated[str, Path(min_length=1, max_length=200)]


def _agent(row: dict[str, Any]) -> AgentOut:
    return AgentOut(**{**row, "facts": json.loads(row["facts"] or "{}")})


@router.get("", response_model=list[AgentOut])
def list_agents(state: State, who: Staff) -> list[AgentOut]:
    """Every agent with last seen, version and host facts."""
    with state.lock:
        return [_agent(r) for r in state.mgmt.agents()]


@router.get("/me/actions", response_model=list[ActionOut])
def my_actions(state: State, who: Agent) -> list[ActionOut]:
    """The actions queued for the calling agent (and no other)."""
    with state.lock:
        return [ActionOut(**r) for r in state.mgmt.actions_for(who.agent_id or who.name)]


@router.post("/{agent_id}/actions", response_model=ActionOut, status_code=201)
def queue_action(agent_id: AgentId, action: ActionCreate, state: State, who: Admin) -> ActionOut:
    """Queue an endpoint action for an agent to fetch and run."""
    row = {"action_id": secrets.token_hex(8), "agent_id": agent_id, "kind": action.kind,
           "params": action.params, "actor": who.actor}  # fmt: skip
    with state.lock:
        state.mgmt.queue_action(row)
        state.mgmt.audit(who.actor, "agent.action", agent_id, row)
        return ActionOut(**state.mgmt.actions_for(agent_id)[-1])


class ActionResultIn(BaseModel):
    """What running an action did, as the agent reports it."""

    model_config = ConfigDict(extra="forbid")
    ok: bool
    detail: str = Field(default="", max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict)


@router.post("/me/actions/{action_id}/result", status_code=204, responses=NOT_FOUND)
def report_result(action_id: AgentId, result: ActionResultIn, state: State, who: Agent) -> None:
    """The calling agent reports the result of one of its actions (audited)."""
    with state.lock:
        found = state.mgmt.action_result(who.agent_id or who.name, action_id, result.model_dump())
    if not found:
        raise HTTPException(404, f"no action {action_id} for this agent")
