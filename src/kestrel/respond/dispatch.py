"""Server-side response: findings → playbooks, with endpoint actions forwarded to the
agent of the host the finding is about, and cloud / notify actions run here.

Why forward: the server cannot kill a process or move a file on another host; the agent
there can. The step's audit record says "queued for agent X" with the action id, and the
agent reports the result (`kestrel.store.management.ManagementStore.action_result`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kestrel.errors import ActionError
from kestrel.findings import Finding
from kestrel.respond.actions import ACTIONS, Action, ActionResult, ActionSpec
from kestrel.respond.audit import AuditLog
from kestrel.respond.executor import PlaybookExecutor
from kestrel.respond.playbook import Playbook
from kestrel.respond.policy import PolicyEngine
from kestrel.respond.runs import Run, RunStore

EvidenceLookup = Callable[[Finding], list[dict[str, Any]]]
"""The evidence events of a finding, as column dicts (first one feeds ``{{ event.* }}``)."""


class ActionQueue(Protocol):
    """Where actions for agents wait (`ManagementStore` is one)."""

    def queue_action(self, action: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class AgentDispatch:
    """An endpoint action that is queued for one agent instead of run here."""

    spec: ActionSpec
    queue: ActionQueue
    agent_id: str | None
    actor: str = "respond"

    def run(self, params: Any) -> ActionResult:
        if not self.agent_id:
            raise ActionError(f"{self.spec.name}: the finding names no agent to run it")
        action_id = secrets.token_hex(8)
        self.queue.queue_action({"action_id": action_id, "agent_id": self.agent_id,
                                 "kind": self.spec.name, "actor": self.actor,
                                 "params": params.model_dump(mode="json")})  # fmt: skip
        return ActionResult(True, f"queued for agent {self.agent_id}",
                            {"action_id": action_id, "agent_id": self.agent_id})  # fmt: skip


def rows_by_event_id(rows: Sequence[Mapping[str, Any]]) -> EvidenceLookup:
    """An evidence lookup over rows at hand (a batch just ingested)."""
    index = {r["event_id"]: dict(r) for r in rows if r.get("event_id")}
    return lambda f: [index[e] for e in f.evidence if e in index]


@dataclass(slots=True)
class Responder:
    """Runs the playbooks for each finding; one executor per finding, whose endpoint actions
    go to the agent named by the finding's first evidence event (``agent_id``)."""

    playbooks: Sequence[Playbook]
    queue: ActionQueue
    audit: AuditLog
    runs: RunStore
    policy: PolicyEngine = field(default_factory=PolicyEngine)
    local: Mapping[str, Action] = field(default_factory=dict)  # cloud / notify actions
    actor: str = "respond"

    def respond(self, findings: Sequence[Finding], evidence: EvidenceLookup) -> list[Run]:
        """Every run started for ``findings``."""
        runs: list[Run] = []
        for finding in findings:
            events = evidence(finding)
            agent = events[0].get("agent_id") if events else None
            runs += self.executor(agent).respond(finding, self.playbooks, events)
        return runs

    def executor(self, agent_id: str | None) -> PlaybookExecutor:
        """An executor whose endpoint actions are queued for ``agent_id``."""
        forwarded = {name: AgentDispatch(spec, self.queue, agent_id, self.actor)
                     for name, spec in ACTIONS.items() if spec.scope == "endpoint"}  # fmt: skip
        actions: dict[str, Action] = {**self.local, **forwarded}
        return PlaybookExecutor(actions, self.audit, self.runs, self.policy, self.actor)
