"""The Kestrel API served for real (uvicorn on 127.0.0.1) in a thread of the test, over an
in-memory store; it can be stopped and started again on the same port with the same store
(the spool test's outage)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from kestrel.api import ApiSettings, create_app
from kestrel.api.auth import Role, create_token
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedServer:
    """One app, one store; `start` / `stop` any number of times."""

    detect: Any = None
    port: int = field(default_factory=free_port)
    store: DuckDBStore = field(default_factory=lambda: DuckDBStore(":memory:"))
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.app = create_app(ApiSettings(db=":memory:"), store=self.store, detect=self.detect)
        self.state = self.app.state.kestrel
        self.mgmt: ManagementStore = self.state.mgmt

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def agent_token(self, agent_id: str) -> str:
        with self.state.lock:
            token, _ = create_token(self.mgmt, Role.AGENT, agent_id, agent_id=agent_id)
        return token

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off", ws="none")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def events(self, agent_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            table = self.store.query(
                "SELECT event_id, raw FROM events WHERE agent_id = ? ORDER BY time", [agent_id]
            )
        return list(table.to_pylist())

    def close(self) -> None:
        """Stop serving and close the store."""
        self.stop()
        self.store.close()
