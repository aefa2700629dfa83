"""Management data beside the events: API tokens (hashed), the audit log, finding statuses,
suppressions, agents and their queued actions, and policies.

Why here and not in the API: DESIGN.md keeps management data in the same store as the
events, so a PostgreSQL deployment shares it between API replicas. Every statement goes
through `Store.query` in plain SQL (no DuckDB-only syntax), so the PostgreSQL store can run
it unchanged. Nothing here knows HTTP; `kestrel.api` and the CLI call it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kestrel.store.base import Store

_DDL = (
    """CREATE TABLE IF NOT EXISTS api_tokens (
  token_id VARCHAR, name VARCHAR, role VARCHAR, secret_hash VARCHAR, agent_id VARCHAR,
  created TIMESTAMPTZ, expires TIMESTAMPTZ, revoked BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
  time TIMESTAMPTZ, actor VARCHAR, action VARCHAR, target VARCHAR, detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS finding_status (
  finding_id VARCHAR, status VARCHAR, note VARCHAR, actor VARCHAR, time TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS suppressions (
  detector VARCHAR, entity_type VARCHAR, entity_id VARCHAR, finding_id VARCHAR,
  note VARCHAR, actor VARCHAR, time TIMESTAMPTZ)""",
    # Added after the first release: which signals a suppression covers, and when it ends.
    "ALTER TABLE suppressions ADD COLUMN IF NOT EXISTS signals VARCHAR",
    "ALTER TABLE suppressions ADD COLUMN IF NOT EXISTS expires TIMESTAMPTZ",
    """CREATE TABLE IF NOT EXISTS agents (
  agent_id VARCHAR, host VARCHAR, version VARCHAR, facts VARCHAR,
  first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS agent_actions (
  action_id VARCHAR, agent_id VARCHAR, kind VARCHAR, params VARCHAR, status VARCHAR,
  created TIMESTAMPTZ, actor VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS policies (
  name VARCHAR, value VARCHAR, actor VARCHAR, time TIMESTAMPTZ)""",
)


_SUPPRESSION_COLUMNS = ("detector", "entity_type", "entity_id", "finding_id", "note", "actor",
                        "time", "signals", "expires")  # fmt: skip


def _suppression(row: dict[str, Any]) -> Suppression:
    """A row as a `Suppression`; rows from before ``signals`` existed cover any signal."""
    signals = tuple(json.loads(row["signals"])) if row["signals"] else ()
    return Suppression(**{**row, "signals": signals})


def now() -> datetime:
    """The current time, UTC (one place, so tests can reason about it)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: never the secret, only its SHA-256."""

    token_id: str
    name: str
    role: str
    secret_hash: str
    agent_id: str | None
    created: datetime
    expires: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step of a finding's status workflow."""

    finding_id: str
    status: str
    note: str
    actor: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Suppression:
    """A false positive fed back: the detector should not report this entity again with
    the same kind of evidence (``signals``, the signal names; empty: any) until ``expires``
    (None: never). A finding with a signal the analyst did not see is not suppressed."""

    detector: str
    entity_type: str
    entity_id: str
    finding_id: str
    note: str
    actor: str
    time: datetime
    signals: tuple[str, ...] = ()
    expires: datetime | None = None

    def active(self, at: datetime) -> bool:
        """Whether the suppression still holds at ``at``."""
        return self.expires is None or at < self.expires


class ManagementStore:
    """Management tables over any `Store`; created on first use, idempotently."""

    def __init__(self, store: Store) -> None:
        self.store = store
        for ddl in _DDL:
            store.query(ddl)

    # -- tokens -------------------------------------------------------------------------
    def add_token(self, record: TokenRecord) -> None:
        """Keep a new token's hash and role."""
        self.store.query(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [record.token_id, record.name, record.role, record.secret_hash, record.agent_id,
             record.created, record.expires, record.revoked],
        )  # fmt: skip

    def token(self, token_id: str) -> TokenRecord | None:
        """The token with this public id, or None."""
        rows = self._rows("SELECT * FROM api_tokens WHERE token_id = ?", [token_id])
        return TokenRecord(**rows[0]) if rows else None

    def tokens(self) -> list[TokenRecord]:
        """Every token, newest first (hashes included; callers must not show them)."""
        return [TokenRecord(**r) for r in self._rows("SELECT * FROM api_tokens ORDER BY created")]

    def revoke_token(self, token_id: str) -> bool:
        """Mark a token revoked; False when there is no such token."""
        if self.token(token_id) is None:
            return False
        self.store.query("UPDATE api_tokens SET revoked = TRUE WHERE token_id = ?", [token_id])
        return True

    # -- audit --------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Append one line to the audit log (never updated, never deleted)."""
        self.store.query(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
            [now(), actor, action, target, json.dumps(detail, default=str)],
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent audit lines first."""
        return self._rows("SELECT * FROM audit_log ORDER BY time DESC LIMIT ?", [limit])

    # -- finding statuses and suppressions ------------------------------------------------
    def set_status(self, change: StatusChange) -> None:
        """Record a status change; the latest one is the finding's status."""
        self.store.query(
            "INSERT INTO finding_status VALUES (?, ?, ?, ?, ?)",
            [change.finding_id, change.status, change.note, change.actor, change.time],
        )

    def statuses(self) -> dict[str, StatusChange]:
        """The latest status change of every finding that has one."""
        rows = self._rows("SELECT * FROM finding_status ORDER BY time")
        return {r["finding_id"]: StatusChange(**r) for r in rows}

    def history(self, finding_id: str) -> list[StatusChange]:
        """Every status change of one finding, oldest first."""
        rows = self._rows(
            "SELECT * FROM finding_status WHERE finding_id = ? ORDER BY time", [finding_id]
        )
        return [StatusChange(**r) for r in rows]

    def suppress(self, s: Suppression) -> None:
        """Record a suppression (what a false positive feeds back to the detectors)."""
        self.store.query(
            f"INSERT INTO suppressions ({', '.join(_SUPPRESSION_COLUMNS)}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [s.detector, s.entity_type, s.entity_id, s.finding_id, s.note, s.actor, s.time,
             json.dumps(list(s.signals)), s.expires],
        )  # fmt: skip

    def suppressions(self, active_at: datetime | None = None) -> list[Suppression]:
        """Every suppression (only those holding at ``active_at`` when given); the
        pipeline drops findings that match one."""
        cols = ", ".join(_SUPPRESSION_COLUMNS)
        rows = self._rows(f"SELECT {cols} FROM suppressions ORDER BY time")
        found = [_suppression(r) for r in rows]
        return [s for s in found if active_at is None or s.active(active_at)]

    # -- agents and their actions -----------------------------------------------------------
    def agent_seen(self, agent_id: str, host: str | None, version: str | None,
                   facts: dict[str, Any] | None) -> None:  # fmt: skip
        """Note that an agent reported now; keep its newest host facts and version."""
        old = self.agent(agent_id)
        t = now()
        if old is None:
            self.store.query(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?)",
                [agent_id, host, version, json.dumps(facts or {}), t, t],
            )
            return
        self.store.query(
            "UPDATE agents SET host = ?, version = ?, facts = ?, last_seen = ? WHERE agent_id = ?",
            [host or old["host"], version or old["version"],
             json.dumps(facts) if facts else old["facts"], t, agent_id],
        )  # fmt: skip

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        """One agent's inventory row, or None."""
        rows = self._rows("SELECT * FROM agents WHERE agent_id = ?", [agent_id])
        return rows[0] if rows else None

    def agents(self) -> list[dict[str, Any]]:
        """Every agent, most recently seen first."""
        return self._rows("SELECT * FROM agents ORDER BY last_seen DESC")

    def queue_action(self, action: dict[str, Any]) -> None:
        """Queue an action for an agent to fetch (isolate host, kill process, ...)."""
        self.store.query(
            "INSERT INTO agent_actions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [action["action_id"], action["agent_id"], action["kind"],
             json.dumps(action["params"]), "queued", now(), action["actor"]],
        )  # fmt: skip

    def actions_for(self, agent_id: str) -> list[dict[str, Any]]:
        """The actions queued for one agent, oldest first."""
        rows = self._rows(
            "SELECT * FROM agent_actions WHERE agent_id = ? ORDER BY created", [agent_id]
        )
        return [{**r, "params": json.loads(r["params"])} for r in rows]

    def action_result(self, agent_id: str, action_id: str, result: dict[str, Any]) -> bool:
        """Record what an agent reports for one of *its* actions (status ``done`` or
        ``failed``; the result goes to the audit log). False when the agent has no such
        action, so one agent cannot close another's."""
        rows = self._rows(
            "SELECT action_id FROM agent_actions WHERE action_id = ? AND agent_id = ?",
            [action_id, agent_id],
        )
        if not rows:
            return False
        status = "done" if result.get("ok") else "failed"
        self.store.query(
            "UPDATE agent_actions SET status = ? WHERE action_id = ?", [status, action_id]
        )
        self.audit(f"agent:{agent_id}", "agent.action_result", action_id, result)
        return True

    # -- policies ---------------------------------------------------------------------------
    def set_policy(self, name: str, value: Any, actor: str) -> None:
        """Record a policy value; the newest row for a name wins (history is kept)."""
        self.store.query(
            "INSERT INTO policies VALUES (?, ?, ?, ?)", [name, json.dumps(value), actor, now()]
        )

    def policies(self) -> dict[str, Any]:
        """The current value of every policy."""
        rows = self._rows("SELECT * FROM policies ORDER BY time")
        return {r["name"]: json.loads(r["value"]) for r in rows}

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.store.query(sql, params).to_pylist()  # type: ignore[no-any-return]
