"""How the agent talks to the server, behind two small protocols so the agent loop never
knows HTTP: `EventSink` (send a batch of envelopes) and `ActionSource` (fetch this host's
actions, report their results). `HttpServer` speaks Kestrel's API:

* ``POST /api/v1/events?format=agent`` (JSON Lines, ``Authorization: Bearer <agent token>``)
* ``GET /api/v1/agents/me/actions``
* ``POST /api/v1/agents/me/actions/{action_id}/result``

Stdlib ``urllib`` only: the agent stays small and has no HTTP library to keep patched.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from kestrel import __version__


class ServerUnavailableError(Exception):
    """The server could not be reached or answered 5xx / 429: try again later."""


class ServerRefusedError(Exception):
    """The server answered 4xx: the request is wrong and resending will not help."""


class EventSink(Protocol):
    """Where batches of envelopes go."""

    def send(self, body: bytes) -> None:
        """Deliver JSON Lines; raise `ServerUnavailableError` to be retried later."""
        ...


class ActionSource(Protocol):
    """Where this host's response actions come from, and results go back to."""

    def fetch(self) -> list[dict[str, Any]]:
        """Actions queued for this agent (``action_id``, ``kind``, ``params``, ``status``)."""
        ...

    def report(self, action_id: str, result: dict[str, Any]) -> None:
        """Tell the server what running one action did."""
        ...


@dataclass(frozen=True, slots=True)
class HttpServer:
    """`EventSink` and `ActionSource` over Kestrel's HTTP API."""

    url: str
    token: str
    timeout: float = 10.0

    def send(self, body: bytes) -> None:
        self._call("POST", "/api/v1/events?format=agent", body, "application/x-ndjson")

    def fetch(self) -> list[dict[str, Any]]:
        found = self._call("GET", "/api/v1/agents/me/actions", None, None)
        return list(found) if isinstance(found, list) else []

    def report(self, action_id: str, result: dict[str, Any]) -> None:
        body = json.dumps(result).encode()
        self._call("POST", f"/api/v1/agents/me/actions/{action_id}/result", body,
                   "application/json")  # fmt: skip

    def _call(self, method: str, path: str, body: bytes | None, kind: str | None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}",
                   "X-Kestrel-Agent-Version": __version__}  # fmt: skip
        if kind:
            headers["Content-Type"] = kind
        req = urllib.request.Request(self.url.rstrip("/") + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = resp.read()
        except urllib.error.HTTPError as exc:
            _raise_for(exc.code, exc.read()[:500])
        except (OSError, TimeoutError) as exc:
            raise ServerUnavailableError(str(exc)) from exc
        return json.loads(data) if data else None


def _raise_for(status: int, detail: bytes) -> None:
    text = f"HTTP {status}: {detail.decode('utf-8', 'replace')}"
    if status >= 500 or status == 429:
        raise ServerUnavailableError(text)
    raise ServerRefusedError(text)
