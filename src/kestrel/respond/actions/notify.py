"""Webhook actions: ``notify`` (a chat or paging hook) and ``open_ticket`` (a ticketing
hook). Both POST JSON and retry with backoff, because the moment a response runs is often
the moment a flaky hook is busiest; a 4xx answer is not retried (the request is wrong)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import Field

from kestrel.errors import ActionError
from kestrel.respond.actions.base import ActionResult, ActionSpec, Params


class NotifyParams(Params):
    url: str = Field(pattern=r"^https?://", description="The webhook to POST to.")
    message: str = Field(min_length=1)
    severity: str = "info"


class TicketParams(Params):
    url: str = Field(pattern=r"^https?://")
    title: str = Field(min_length=1)
    body: str = ""
    labels: list[str] = Field(default_factory=list)


NOTIFY = ActionSpec("notify", "notify", "url", NotifyParams, "POST a message to a webhook.")
TICKET = ActionSpec("open_ticket", "notify", "url", TicketParams, "POST a ticket to a webhook.")
SPECS = (NOTIFY, TICKET)


class Poster(Protocol):
    """Sends one POST; returns the HTTP status or raises `OSError` when unreachable."""

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float = 5.0) -> int:
    """The real poster (stdlib, so the agent needs no HTTP library)."""
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass(slots=True)
class Webhook:
    """POST with retries: ``retries`` more tries after the first, doubling ``backoff``."""

    post: Poster = urllib_post
    retries: int = 3
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    attempts: list[int] = field(default_factory=list)  # statuses seen (0: unreachable)

    def send(self, url: str, document: dict[str, Any]) -> int:
        """The final 2xx status; `ActionError` after the last failed try or on a 4xx."""
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "kestrel-respond"}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            status = self._try(url, body, headers)
            if 200 <= status < 300:
                return status
            if 400 <= status < 500 and status != 429:
                raise ActionError(f"webhook {url} refused the request: HTTP {status}")
            if attempt < self.retries:
                self.sleep(delay)
                delay *= 2
        raise ActionError(f"webhook {url} failed after {self.retries + 1} tries: {self.attempts}")

    def _try(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            status = self.post(url, body, headers)
        except OSError:
            status = 0
        self.attempts.append(status)
        return status


@dataclass(slots=True)
class Notify:
    """Posts ``{"text", "severity", "source"}`` to a webhook."""

    webhook: Webhook = field(default_factory=Webhook)
    spec: ClassVar[ActionSpec] = NOTIFY

    def run(self, params: NotifyParams) -> ActionResult:
        doc = {"text": params.message, "severity": params.severity, "source": "kestrel"}
        status = self.webhook.send(params.url, doc)
        return ActionResult(True, f"notified {params.url} (HTTP {status})", {"status": status})


@dataclass(slots=True)
class OpenTicket:
    """Posts ``{"title", "body", "labels", "source"}`` to a ticketing webhook."""

    webhook: Webhook = field(default_factory=Webhook)
    spec: ClassVar[ActionSpec] = TICKET

    def run(self, params: TicketParams) -> ActionResult:
        doc = {"title": params.title, "body": params.body, "labels": params.labels,
               "source": "kestrel"}  # fmt: skip
        status = self.webhook.send(params.url, doc)
        return ActionResult(True, f"ticket posted to {params.url} (HTTP {status})",
                            {"status": status})  # fmt: skip
