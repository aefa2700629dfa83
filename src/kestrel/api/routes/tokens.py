"""``/api/v1/tokens``: admins create, list and revoke tokens. A new token's secret is in the
answer once; the store keeps its hash only, and lists never show either."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from kestrel.api.auth import Role, create_token
from kestrel.api.deps import Admin, State
from kestrel.api.routes import AUTH_ERRORS, NOT_FOUND
from kestrel.api.schemas import TokenCreate, TokenCreated, TokenOut
from kestrel.store.management import TokenRecord

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=AUTH_ERRORS)


def _out(r: TokenRecord) -> TokenOut:
    return TokenOut(token_id=r.token_id, name=r.name, role=r.role, agent_id=r.agent_id,
                    created=r.created, expires=r.expires, revoked=r.revoked)  # fmt: skip


@router.get("", response_model=list[TokenOut])
def list_tokens(state: State, who: Admin) -> list[TokenOut]:
    """Every token's public part."""
    with state.lock:
        return [_out(r) for r in state.mgmt.tokens()]


@router.post("", response_model=TokenCreated, status_code=201)
def new_token(body: TokenCreate, state: State, who: Admin) -> TokenCreated:
    """Create a token; its secret is shown in this answer only."""
    ttl = timedelta(hours=body.ttl_hours) if body.ttl_hours else None
    with state.lock:
        token, record = create_token(state.mgmt, Role(body.role), body.name, ttl, body.agent_id)
        state.mgmt.audit(who.actor, "token.create", record.token_id,
                         {"role": body.role, "name": body.name})  # fmt: skip
    return TokenCreated(**_out(record).model_dump(), token=token)


@router.delete("/{token_id}", response_model=TokenOut, responses=NOT_FOUND)
def revoke(
    token_id: Annotated[str, Path(pattern="^[0-9a-f]{1,64}$")], state: State, who: Admin
) -> TokenOut:
    """Revoke a token at once (in this process; others within the token cache time)."""
    with state.lock:
        if not state.mgmt.revoke_token(token_id):
            raise HTTPException(404, f"no token {token_id}")
        state.mgmt.audit(who.actor, "token.revoke", token_id, {})
        record = state.mgmt.token(token_id)
    state.forget_tokens()
    assert record is not None
    return _out(record)
