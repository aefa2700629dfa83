"""API tokens: random secrets shown once, kept only as SHA-256 hashes, checked in constant
time, each with one role.

A token reads ``kst_<token_id>_<secret>``: the public ``token_id`` finds the stored record
without comparing secrets in SQL, and the 32-byte secret is compared by hash with
`hmac.compare_digest`. The store never sees a secret, so a leaked database grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kestrel.store.management import ManagementStore, TokenRecord, now

PREFIX = "kst"


class Role(StrEnum):
    """What a token may do; enforced by `kestrel.api.deps.require` on every route."""

    ADMIN = "admin"  # everything, including tokens and policies
    ANALYST = "analyst"  # findings, entities, hunts, audit: the dashboard's user
    AGENT = "agent"  # send events, fetch its own actions; nothing else


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name and role (and agent id for agent tokens)."""

    token_id: str
    name: str
    role: Role
    agent_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.role}:{self.name}"


def hash_secret(secret: str) -> str:
    """SHA-256 of a token secret, hex (the only form stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    mgmt: ManagementStore,
    role: Role,
    name: str,
    ttl: timedelta | None = None,
    agent_id: str | None = None,
) -> tuple[str, TokenRecord]:
    """Make a token, store its hash, and return the full token (shown to the user once)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    created = now()
    record = TokenRecord(
        token_id=token_id,
        name=name,
        role=str(role),
        secret_hash=hash_secret(secret),
        agent_id=(agent_id or name) if role is Role.AGENT else None,
        created=created,
        expires=created + ttl if ttl else None,
        revoked=False,
    )
    mgmt.add_token(record)
    return f"{PREFIX}_{token_id}_{secret}", record


def verify_token(mgmt: ManagementStore, token: str, at: datetime | None = None) -> Principal | None:
    """The principal a presented token stands for, or None (malformed, unknown, wrong
    secret, revoked or expired: the caller answers 401 without saying which)."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    record = mgmt.token(parts[1])
    if record is None or record.revoked:
        return None
    if not hmac.compare_digest(record.secret_hash, hash_secret(parts[2])):
        return None
    if record.expires is not None and record.expires <= (at or now()):
        return None
    return Principal(record.token_id, record.name, Role(record.role), record.agent_id)
