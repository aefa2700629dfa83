"""Where the responder keeps its state on this host, how a finding is read from a file,
and the executor the CLI builds: one place, so `kestrel playbook run` and
`kestrel approve` resume each other's runs and write one audit log.

State lives under ``$KESTREL_HOME`` (default ``~/.kestrel``): ``audit.jsonl``, ``runs/``
and ``quarantine/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kestrel.config import home
from kestrel.errors import ConfigError
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.respond.actions import Action, Environment, build_actions
from kestrel.respond.audit import AuditLog
from kestrel.respond.executor import PlaybookExecutor
from kestrel.respond.firewall import NftFirewall
from kestrel.respond.policy import PolicyEngine, load_policy
from kestrel.respond.runs import RunStore


@dataclass(frozen=True, slots=True)
class ResponsePaths:
    """The responder's files under one folder."""

    root: Path

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"


def default_paths() -> ResponsePaths:
    """``$KESTREL_HOME`` (``~/.kestrel``)."""
    return ResponsePaths(home())


def local_executor(paths: ResponsePaths, policy: Path | None, actor: str,
                   actions: Mapping[str, Action] | None = None) -> PlaybookExecutor:  # fmt: skip
    """An executor over this host's real actions (nftables, psutil, webhooks, no AWS
    unless a client is given), the policy file (dry run when None) and the shared logs."""
    if actions is None:
        actions = build_actions(Environment(paths.quarantine, firewall=NftFirewall()))
    return PlaybookExecutor(actions, AuditLog(paths.audit), RunStore(paths.runs),
                            PolicyEngine(load_policy(policy)), actor)  # fmt: skip


def finding_from_json(doc: Mapping[str, Any]) -> Finding:
    """A finding from its JSON export (`kestrel.findings.export.to_json`) or a hand-written
    equivalent: techniques and evidence may be plain id lists."""
    try:
        return Finding(
            detector=doc["detector"], entity=Entity(doc["entity"]["type"], doc["entity"]["id"]),
            first_seen=datetime.fromisoformat(doc["first_seen"]),
            last_seen=datetime.fromisoformat(doc.get("last_seen", doc["first_seen"])),
            severity=Severity.parse(doc["severity"]), title=doc.get("title", ""),
            signals=tuple(_signal(s) for s in doc["signals"]),
            techniques=tuple(_id(t, "id") for t in doc.get("techniques", ())),
            evidence=tuple(_id(e, "event_id") for e in doc.get("evidence", ())),
            tags=tuple(doc.get("tags", ())),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"not a finding document: {type(exc).__name__}: {exc}") from exc


def _signal(s: Mapping[str, Any]) -> Signal:
    return Signal(s["name"], s["value"], s.get("threshold"), s.get("detail", ""),
                  s.get("kind", "rule"))  # fmt: skip


def _id(item: Any, key: str) -> str:
    return str(item[key]) if isinstance(item, Mapping) else str(item)
