"""notify / open_ticket against a real local HTTP server that fails on purpose."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kestrel.errors import ActionError
from kestrel.respond.actions.notify import (
    Notify,
    NotifyParams,
    OpenTicket,
    TicketParams,
    Webhook,
)


class Hook:
    """A webhook that answers the scripted statuses in turn (then 200) and keeps bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(json.loads(body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _webhook() -> Webhook:
    return Webhook(retries=3, backoff=0.01, sleep=lambda s: None)


def test_notify_retries_until_the_hook_answers(hook: tuple[Hook, str]):
    state, url = hook
    state.statuses = [503, 500]
    wh = _webhook()
    result = Notify(wh).run(NotifyParams(url=url, message="m", severity="high"))
    assert result.ok and wh.attempts == [503, 500, 200]
    assert state.bodies[-1] == {"text": "m", "severity": "high", "source": "kestrel"}


def test_open_ticket_gives_up_after_the_last_retry(hook: tuple[Hook, str]):
    state, url = hook
    state.statuses = [503] * 4
    with pytest.raises(ActionError, match="failed after 4 tries"):
        OpenTicket(_webhook()).run(TicketParams(url=url, title="t"))
    assert len(state.bodies) == 4


def test_a_client_error_is_not_retried(hook: tuple[Hook, str]):
    state, url = hook
    state.statuses = [400]
    with pytest.raises(ActionError, match="HTTP 400"):
        Notify(_webhook()).run(NotifyParams(url=url, message="m"))
    assert len(state.bodies) == 1


def test_unreachable_counts_as_a_failed_try():
    wh = _webhook()
    with pytest.raises(ActionError, match="failed after"):
        Notify(wh).run(NotifyParams(url="http://127.0.0.1:9/none", message="m"))
    assert wh.attempts == [0, 0, 0, 0]
