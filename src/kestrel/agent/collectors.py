"""What the agent observes, one collector per kind of event, each with one method:
``poll() -> list[Observation]`` (event type, payload, when). psutil makes them work on
Linux, Windows and macOS alike; a platform-specific collector (ETW on Windows, say) would
implement the same method.

Process and network collectors diff snapshots between polls: a process that lives shorter
than the poll interval can be missed (a kernel event source would not miss it; psutil has
none), which is why the interval is short by default and the cost per poll is kept to one
``pids()`` call plus one ``/proc`` read per *new* process.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil

MAX_HASH_BYTES = 64 * 1024 * 1024
_PROC_ATTRS = ["pid", "ppid", "name", "exe", "cmdline", "username", "create_time"]


class Observation(NamedTuple):
    """One thing seen: the envelope's event type, its payload, and when (epoch seconds)."""

    event_type: str
    payload: dict[str, Any]
    at: float


@dataclass(slots=True)
class HashCache:
    """SHA-256 of files by (path, size, mtime): an executable is read once, not per start."""

    limit: int = MAX_HASH_BYTES
    _known: dict[tuple[str, int, int], str] = field(default_factory=dict)

    def sha256(self, path: str | None) -> str | None:
        """The file's hash, or None when unreadable, too large or not a regular file."""
        if not path:
            return None
        try:
            file = Path(path)
            st = file.stat()
            key = (path, st.st_size, st.st_mtime_ns)
            if key not in self._known:
                if st.st_size > self.limit or not stat.S_ISREG(st.st_mode):
                    return None
                self._known[key] = _hash(file)
            return self._known[key]
        except OSError:
            return None


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(slots=True)
class ProcessCollector:
    """Process start and stop, by diffing ``psutil.pids()`` between polls."""

    hashes: HashCache = field(default_factory=HashCache)
    report_existing: bool = False  # report processes already running at the first poll
    clock: Callable[[], float] = time.time
    _known: dict[int, dict[str, Any]] | None = None

    def poll(self) -> list[Observation]:
        now = self.clock()
        pids = set(psutil.pids())
        first = self._known is None
        known = self._known if self._known is not None else {}
        out: list[Observation] = []
        for pid in sorted(pids - known.keys()):
            info = _process_info(pid, known, self.hashes)
            if info is not None:
                known[pid] = info
                if not first or self.report_existing:
                    out.append(Observation("process", {"action": "start", **info}, now))
        for pid in sorted(known.keys() - pids):
            gone = known.pop(pid)
            stop: dict[str, Any] = {k: gone[k] for k in ("pid", "ppid", "name", "exe") if k in gone}
            out.append(Observation("process", {"action": "stop", **stop}, now))
        self._known = known
        return out


def _process_info(pid: int, known: dict[int, dict[str, Any]],
                  hashes: HashCache) -> dict[str, Any] | None:  # fmt: skip
    """A new process's payload fields; None when it is already gone."""
    try:
        raw = psutil.Process(pid).as_dict(attrs=_PROC_ATTRS, ad_value=None)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    info = {k: raw[k] for k in ("pid", "ppid", "name", "exe", "cmdline", "username")
            if raw.get(k) not in (None, "", [])}  # fmt: skip
    info["sha256"] = hashes.sha256(raw.get("exe"))
    parent = known.get(raw.get("ppid") or -1)
    if parent:
        info["parent_name"] = parent.get("name")
        info["parent_exe"] = parent.get("exe")
    info["create_time"] = raw.get("create_time")
    return {k: v for k, v in info.items() if v is not None}


@dataclass(slots=True)
class NetworkCollector:
    """New TCP / UDP sockets with their owning process (``psutil.net_connections``)."""

    clock: Callable[[], float] = time.time
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def poll(self) -> list[Observation]:
        now = self.clock()
        try:
            conns = psutil.net_connections(kind="inet")
        except (psutil.AccessDenied, OSError):
            return []
        listening = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr}
        current: set[tuple[Any, ...]] = set()
        out: list[Observation] = []
        for c in conns:
            key = (c.pid, c.laddr, c.raddr, c.status, c.type)
            current.add(key)
            if key not in self._seen and (c.raddr or c.status == psutil.CONN_LISTEN):
                out.append(Observation("network", _conn_payload(c, listening), now))
        self._seen = current
        return out


def _conn_payload(c: Any, listening: set[int]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "pid": c.pid, "protocol": "tcp" if c.type == socket.SOCK_STREAM else "udp",
        "status": c.status, "local_ip": c.laddr.ip, "local_port": c.laddr.port,
    }  # fmt: skip
    if c.raddr:
        payload["remote_ip"], payload["remote_port"] = c.raddr.ip, c.raddr.port
        payload["direction"] = "inbound" if c.laddr.port in listening else "outbound"
    if c.pid:
        with contextlib.suppress(psutil.Error):
            payload["process_name"] = psutil.Process(c.pid).name()
    return {k: v for k, v in payload.items() if v is not None and v != psutil.CONN_NONE}


@dataclass(slots=True)
class SystemCollector:
    """Host facts (OS, boot time, CPUs, memory, addresses) every ``every`` seconds."""

    every: float = 300.0
    clock: Callable[[], float] = time.time
    _last: float = float("-inf")

    def poll(self) -> list[Observation]:
        now = self.clock()
        if now - self._last < self.every:
            return []
        self._last = now
        return [Observation("system", system_facts(), now)]


def system_facts() -> dict[str, Any]:
    """The ``system`` payload."""
    addresses = sorted({a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                        if a.family in (socket.AF_INET, socket.AF_INET6)})  # fmt: skip
    return {"os": platform.system(), "os_version": platform.release(),
            "boot_time": psutil.boot_time(), "cpu_count": psutil.cpu_count(),
            "mem_total": psutil.virtual_memory().total, "ip_addresses": addresses}  # fmt: skip
