"""Response actions: the registry of specs (`ACTIONS`, what playbooks may name) and
`build_actions`, which makes the runnable objects with their side-effect interfaces.

Third-party actions come in through the ``kestrel.actions`` entry-point group (an object
with ``spec`` and ``run``); see `kestrel.plugins`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kestrel.respond.actions import cloud, endpoint, notify
from kestrel.respond.actions.base import (
    Action,
    ActionResult,
    ActionSpec,
    Params,
    RecordingAction,
)
from kestrel.respond.firewall import Firewall, MemoryFirewall
from kestrel.respond.quarantine import Quarantine

ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec for spec in (*endpoint.SPECS, *cloud.SPECS, *notify.SPECS)
}


@dataclass(slots=True)
class Environment:
    """The side-effect interfaces the actions use; defaults are harmless in-memory ones
    except the quarantine folder, which callers set (``~/.kestrel/quarantine``)."""

    quarantine: Path
    firewall: Firewall = field(default_factory=MemoryFirewall)
    server: tuple[str, ...] = ()  # addresses isolation keeps reachable
    iam: Any = None  # a boto3 IAM client; cloud actions are absent without one
    webhook: notify.Webhook = field(default_factory=notify.Webhook)


def build_actions(env: Environment) -> dict[str, Action]:
    """The runnable actions for ``env``, by name."""
    q = Quarantine(env.quarantine)
    found: dict[str, Action] = {
        "kill_process": endpoint.KillProcess(),
        "quarantine_file": endpoint.QuarantineFile(q),
        "restore_file": endpoint.RestoreFile(q),
        "block_ip": endpoint.BlockIp(env.firewall),
        "unblock_ip": endpoint.UnblockIp(env.firewall),
        "isolate_host": endpoint.IsolateHost(env.firewall, env.server),
        "unisolate_host": endpoint.UnisolateHost(env.firewall),
        "notify": notify.Notify(env.webhook),
        "open_ticket": notify.OpenTicket(env.webhook),
    }
    if env.iam is not None:
        found["disable_access_key"] = cloud.SetAccessKey(env.iam, "Inactive")
        found["enable_access_key"] = cloud.SetAccessKey(env.iam, "Active")
        found["attach_deny_policy"] = cloud.AttachDenyPolicy(env.iam)
        found["detach_deny_policy"] = cloud.DetachDenyPolicy(env.iam)
    return found


def recording_actions() -> dict[str, RecordingAction]:
    """An in-memory action for every registered spec (``kestrel playbook test``)."""
    return {name: RecordingAction(spec) for name, spec in ACTIONS.items()}


__all__ = [
    "ACTIONS",
    "Action",
    "ActionResult",
    "ActionSpec",
    "Environment",
    "Params",
    "RecordingAction",
    "build_actions",
    "recording_actions",
]
