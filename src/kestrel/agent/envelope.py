"""Envelopes as `docs/agent-envelope.md` defines them, serialized once, byte-stable.

Why serialize at collection time: the bytes go into the spool and are sent as they are, so
an envelope sent twice (a retry after the server took it but the answer was lost) is
byte-identical and the server's ``event_id`` (a hash of the envelope) dedupes it. Keys are
always written in the order of the documented example.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

EVENT_TYPES = ("process", "network", "file", "system")
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class EnvelopeFactory:
    """Builds envelopes for one agent: ``event_id`` is a per-run random prefix and a
    counter, so ids never repeat across restarts without any state on disk."""

    agent_id: str
    hostname: str
    clock: Callable[[], float] = time.time
    prefix: str = field(default_factory=lambda: secrets.token_hex(4))
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def make(self, event_type: str, payload: dict[str, Any], at: float | None = None) -> bytes:
        """One envelope as JSON bytes (no newline); ``hostname`` is added to the payload."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        stamp = int((self.clock() if at is None else at) * 1000)
        doc = {
            "event_id": f"{self.prefix}-{next(self._counter):08d}",
            "agent_id": self.agent_id,
            "event_type": event_type,
            "timestamp": stamp,
            "payload": {**payload, "hostname": self.hostname},
        }
        return _encode(doc)
