"""The agent: collectors → envelopes → spool → server, and server actions → this host.

Three loops on three threads, so a slow server never slows collection:

* collect: poll every collector, serialize envelopes, and every ``flush_interval`` write
  the buffered ones to the spool as one segment;
* send: post the oldest spooled segment; on success delete it, when the server is down
  retry with capped backoff (order is kept: nothing newer goes before it);
* act: fetch this host's queued actions, run the endpoint ones not run before, report each
  result and write it to the agent's own audit log.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kestrel.agent.collectors import Observation
from kestrel.agent.envelope import EnvelopeFactory
from kestrel.agent.spool import Spool
from kestrel.agent.transport import (
    ActionSource,
    EventSink,
    ServerRefusedError,
    ServerUnavailableError,
)
from kestrel.errors import ActionError
from kestrel.respond.actions import ACTIONS, Action
from kestrel.respond.audit import AuditLog

log = logging.getLogger(__name__)
# Names the API may use for an action, mapped to ours.
ALIASES = {"release_host": "unisolate_host"}


class Collector(Protocol):
    """Anything with ``poll`` (see `kestrel.agent.collectors`)."""

    def poll(self) -> list[Observation]: ...


@dataclass(slots=True)
class AgentSettings:
    """Timings and limits; the defaults suit a real host, tests shorten them."""

    poll_interval: float = 0.5
    flush_interval: float = 1.0
    action_interval: float = 5.0
    retry_max: float = 30.0
    batch_max: int = 5000
    spool_max_bytes: int = 256 * 1024 * 1024


@dataclass(slots=True)
class Agent:
    """One agent installation: its state folder holds the id, spool and audit log."""

    state: Path
    sink: EventSink
    collectors: Sequence[Collector]
    actions_source: ActionSource | None = None
    actions: Mapping[str, Action] = field(default_factory=dict)
    settings: AgentSettings = field(default_factory=AgentSettings)
    agent_id: str | None = None
    hostname: str = field(default_factory=socket.gethostname)
    stop_event: threading.Event = field(default_factory=threading.Event)
    sent_events: int = 0
    _collected: threading.Event = field(default_factory=threading.Event)
    _spool: Spool | None = None
    _factory: EnvelopeFactory | None = None

    def __post_init__(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.agent_id = self.agent_id or _agent_id(self.state)
        self._spool = Spool(self.state / "spool", self.settings.spool_max_bytes)
        self._factory = EnvelopeFactory(self.agent_id, self.hostname)

    @property
    def spool(self) -> Spool:
        assert self._spool is not None
        return self._spool

    def run(self) -> None:
        """Run until `stop` is called (or ``stop_event`` set); then flush what is left."""
        threads = [threading.Thread(target=self._send_loop, name="kestrel-send", daemon=True)]
        if self.actions_source is not None:
            threads.append(threading.Thread(target=self._act_loop, name="kestrel-act",
                                            daemon=True))  # fmt: skip
        for t in threads:
            t.start()
        self._collect_loop()
        self._collected.set()  # the last batch is spooled: the sender may finish
        for t in threads:
            t.join(timeout=10)

    def stop(self) -> None:
        self.stop_event.set()

    # -- collect ------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        buffer: list[bytes] = []
        last_flush = time.monotonic()
        while not self.stop_event.is_set():
            buffer.extend(self.collect_once())
            if buffer and (time.monotonic() - last_flush >= self.settings.flush_interval
                           or len(buffer) >= self.settings.batch_max):  # fmt: skip
                self.spool.put(buffer)
                buffer, last_flush = [], time.monotonic()
            self.stop_event.wait(self.settings.poll_interval)
        buffer.extend(self.collect_once())
        self.spool.put(buffer)

    def collect_once(self) -> list[bytes]:
        """Poll every collector once; the envelopes, serialized."""
        assert self._factory is not None
        out: list[bytes] = []
        for collector in self.collectors:
            try:
                found = collector.poll()
            except Exception:  # one broken collector must not stop the others
                log.exception("collector %s failed", type(collector).__name__)
                continue
            out += [self._factory.make(o.event_type, o.payload, o.at) for o in found]
        return out

    # -- send ---------------------------------------------------------------------------
    def _send_loop(self) -> None:
        delay = 0.1
        while True:
            segment = self.spool.oldest()
            if segment is None:
                if self._collected.is_set():
                    return
                self.stop_event.wait(0.1)
                continue
            try:
                self.sink.send(segment.body)
            except ServerUnavailableError as exc:
                if self.stop_event.is_set():
                    return  # it stays spooled for the next start
                log.warning("server unavailable (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            except ServerRefusedError as exc:  # never accepted: keep it aside, go on
                log.error("server refused spool segment %d: %s", segment.seq, exc)
                segment.path.replace(self.state / f"refused-{segment.path.name}")
            self.spool.ack(segment.seq)
            self.sent_events += segment.count
            delay = 0.1

    # -- act ----------------------------------------------------------------------------
    def _act_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.act_once()
            except (ServerUnavailableError, ServerRefusedError) as exc:
                log.warning("cannot fetch actions: %s", exc)
            self.stop_event.wait(self.settings.action_interval)

    def act_once(self) -> int:
        """Run every new queued action once; returns how many ran."""
        assert self.actions_source is not None
        done = _done_ids(self.state)
        fresh = [a for a in self.actions_source.fetch() if a.get("action_id") not in done]
        todo = [a for a in fresh if a.get("status", "queued") == "queued"]
        for action in todo:
            result = self.run_action(action)
            _mark_done(self.state, action["action_id"])
            try:
                self.actions_source.report(action["action_id"], result)
            except (ServerUnavailableError, ServerRefusedError) as exc:
                log.warning("could not report action %s: %s", action["action_id"], exc)
        return len(todo)

    def run_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Run one action from the server (endpoint actions only); audited locally."""
        audit = AuditLog(self.state / "audit.jsonl")
        kind = ALIASES.get(action.get("kind", ""), action.get("kind", ""))
        actor = f"server:{action.get('actor', 'unknown')}"
        audit.append("action_received", actor, {"action": action}, action.get("action_id"))
        try:
            result = self._execute(kind, action.get("params") or {})
            outcome = {"ok": result.ok, "detail": result.detail, "data": result.data}
        except ActionError as exc:
            outcome = {"ok": False, "detail": str(exc), "data": {}}
        audit.append("action_result", "agent", outcome, action.get("action_id"))
        return outcome

    def _execute(self, kind: str, params: dict[str, Any]) -> Any:
        spec = ACTIONS.get(kind)
        if spec is None or spec.scope != "endpoint":
            raise ActionError(f"{kind!r} is not an endpoint action this agent runs")
        runner = self.actions.get(kind)
        if runner is None:
            raise ActionError(f"{kind} is not enabled on this agent")
        return runner.run(spec.check(params))


def _agent_id(state: Path) -> str:
    """The installation's id: made once, kept in the state folder."""
    path = state / "agent_id"
    if not path.exists():
        path.write_text(str(uuid.uuid4()))
    return path.read_text().strip()


def _done_ids(state: Path) -> set[str]:
    path = state / "actions_done"
    return set(path.read_text().split()) if path.exists() else set()


def _mark_done(state: Path, action_id: str) -> None:
    with (state / "actions_done").open("a") as fh:
        fh.write(action_id + "\n")


def server_addresses(url: str) -> tuple[str, ...]:
    """The server's IP addresses (isolation keeps them reachable)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return ()
    return tuple(sorted({str(info[4][0]) for info in infos}))


def endpoint_actions(state: Path, server_url: str) -> dict[str, Action]:
    """The real endpoint actions for this host: nftables, psutil, and a quarantine folder
    in the agent's state; isolation keeps the server's addresses reachable."""
    from kestrel.respond.actions import Environment, build_actions
    from kestrel.respond.firewall import NftFirewall

    env = Environment(state / "quarantine", NftFirewall(), server_addresses(server_url))
    return {k: a for k, a in build_actions(env).items() if ACTIONS[k].scope == "endpoint"}
