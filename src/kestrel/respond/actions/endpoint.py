"""Endpoint actions: kill a process, quarantine / restore a file, block an IP, isolate the
host. They run where the process, file or network is: in the agent when the server sends
them, or locally under ``kestrel playbook run`` on the same host.

Each guards against hitting the wrong thing: a pid is checked against the expected name and
start time (pids are reused), the agent never kills itself or its parents, and the
firewall actions only touch Kestrel's own nftables tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil
from pydantic import Field

from kestrel.errors import ActionError
from kestrel.respond.actions.base import ActionResult, ActionSpec, Params
from kestrel.respond.firewall import Firewall, split_families
from kestrel.respond.quarantine import Quarantine


class KillParams(Params):
    pid: int = Field(gt=1, description="The process to end.")
    name: str | None = Field(default=None, description="Refuse unless the process has this name.")
    create_time: float | None = Field(default=None, description="Refuse unless it started then.")
    timeout: float = Field(default=3.0, gt=0, le=60, description="Seconds to wait before SIGKILL.")


class PathParams(Params):
    path: str = Field(min_length=1, description="The file to move into the quarantine.")
    reason: str = ""


class RestoreParams(Params):
    quarantine_id: str = Field(min_length=1)


class AddressParams(Params):
    ip: str = Field(min_length=1, description="An IP address or network (CIDR).")


class IsolateParams(Params):
    host: str = Field(min_length=1, description="The host (agent) to isolate.")
    keep: list[str] = Field(default_factory=list, description="More addresses to keep.")


class HostParams(Params):
    host: str = Field(min_length=1)


KILL = ActionSpec("kill_process", "endpoint", "name", KillParams,
                  "End a process (SIGTERM, then SIGKILL after timeout).")  # fmt: skip
QUARANTINE = ActionSpec("quarantine_file", "endpoint", "path", PathParams,
                        "Move a file into the quarantine folder, restorable.",
                        undo="restore_file")  # fmt: skip
RESTORE = ActionSpec("restore_file", "endpoint", "quarantine_id", RestoreParams,
                     "Put a quarantined file back where it was.")  # fmt: skip
BLOCK = ActionSpec("block_ip", "endpoint", "ip", AddressParams,
                   "Drop traffic to and from an address.", undo="unblock_ip")  # fmt: skip
UNBLOCK = ActionSpec("unblock_ip", "endpoint", "ip", AddressParams, "Undo block_ip.")
ISOLATE = ActionSpec("isolate_host", "endpoint", "host", IsolateParams,
                     "Drop all traffic but loopback and the Kestrel server.",
                     undo="unisolate_host")  # fmt: skip
UNISOLATE = ActionSpec("unisolate_host", "endpoint", "host", HostParams, "End isolation.")
SPECS = (KILL, QUARANTINE, RESTORE, BLOCK, UNBLOCK, ISOLATE, UNISOLATE)


def _protected() -> set[int]:
    """This process and its ancestors: killing them would kill the responder itself."""
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


@dataclass(frozen=True, slots=True)
class KillProcess:
    """Ends a process after checking it is the one the finding named."""

    spec: ClassVar[ActionSpec] = KILL

    def run(self, params: KillParams) -> ActionResult:
        if params.pid in _protected():
            raise ActionError(f"kill_process: refusing to kill pid {params.pid} (the responder)")
        try:
            proc = psutil.Process(params.pid)
            _check_identity(proc, params)
            proc.terminate()
            _, alive = psutil.wait_procs([proc], timeout=params.timeout)
            for p in alive:
                p.kill()
        except psutil.NoSuchProcess as exc:
            raise ActionError(f"kill_process: no process {params.pid}") from exc
        except psutil.AccessDenied as exc:
            raise ActionError(f"kill_process: not allowed to end pid {params.pid}") from exc
        how = "killed" if alive else "terminated"
        return ActionResult(True, f"{how} pid {params.pid}", {"pid": params.pid, "how": how})


def _check_identity(proc: psutil.Process, params: KillParams) -> None:
    """Refuse a pid that now belongs to another program (pid reuse, a stale finding)."""
    if params.name is not None and proc.name() != params.name:
        raise ActionError(f"kill_process: pid {params.pid} is {proc.name()!r}, not {params.name!r}")
    if params.create_time is not None and abs(proc.create_time() - params.create_time) > 1.0:
        raise ActionError(f"kill_process: pid {params.pid} was reused since the finding")


@dataclass(frozen=True, slots=True)
class QuarantineFile:
    """Moves a file into ``quarantine`` (see `kestrel.respond.quarantine`)."""

    quarantine: Quarantine
    spec: ClassVar[ActionSpec] = QUARANTINE

    def run(self, params: PathParams) -> ActionResult:
        item = self.quarantine.put(Path(params.path), params.reason)
        return ActionResult(
            True,
            f"quarantined {item.original_path} as {item.quarantine_id}",
            {"quarantine_id": item.quarantine_id, "sha256": item.sha256},
        )


@dataclass(frozen=True, slots=True)
class RestoreFile:
    """Puts a quarantined file back."""

    quarantine: Quarantine
    spec: ClassVar[ActionSpec] = RESTORE

    def run(self, params: RestoreParams) -> ActionResult:
        item = self.quarantine.restore(params.quarantine_id)
        return ActionResult(True, f"restored {item.original_path}", {"path": item.original_path})


@dataclass(frozen=True, slots=True)
class BlockIp:
    """Adds an address to Kestrel's block set."""

    firewall: Firewall
    spec: ClassVar[ActionSpec] = BLOCK

    def run(self, params: AddressParams) -> ActionResult:
        split_families([params.ip])
        self.firewall.block(params.ip)
        return ActionResult(True, f"blocked {params.ip}", {"ip": params.ip})


@dataclass(frozen=True, slots=True)
class UnblockIp:
    """Removes an address from Kestrel's block set."""

    firewall: Firewall
    spec: ClassVar[ActionSpec] = UNBLOCK

    def run(self, params: AddressParams) -> ActionResult:
        self.firewall.unblock(params.ip)
        return ActionResult(True, f"unblocked {params.ip}", {"ip": params.ip})


@dataclass(frozen=True, slots=True)
class IsolateHost:
    """Cuts the host off the network except for ``server`` (always kept) and ``keep``."""

    firewall: Firewall
    server: tuple[str, ...]
    spec: ClassVar[ActionSpec] = ISOLATE

    def run(self, params: IsolateParams) -> ActionResult:
        keep = [*self.server, *params.keep]
        if not keep:
            raise ActionError("isolate_host: no server address to keep reachable; refusing")
        self.firewall.isolate(keep)
        return ActionResult(True, f"isolated {params.host}", {"kept": keep})


@dataclass(frozen=True, slots=True)
class UnisolateHost:
    """Ends isolation."""

    firewall: Firewall
    spec: ClassVar[ActionSpec] = UNISOLATE

    def run(self, params: HostParams) -> ActionResult:
        self.firewall.unisolate()
        return ActionResult(True, f"unisolated {params.host}")
