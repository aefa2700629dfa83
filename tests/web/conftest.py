"""A real server (uvicorn on a loopback port) over a seeded store, and headless Debian
Chromium driven by Playwright. Screenshots go to ``test-artifacts/screenshots/``.

Chromium is ``$KESTREL_CHROMIUM`` or ``/usr/bin/chromium`` (`make test` installs Debian's
package when it is missing). Without it the browser tests skip with the reason, except in
CI (``CI=true``), where a missing browser is a failure, not a silent skip.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from kestrel.api import Role, create_app, create_token
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.ingest import ingest_paths
from kestrel.pipeline import save_findings
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("KESTREL_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Served:
    """The running server's base URL, its store and an analyst token."""

    url: str
    store: DuckDBStore
    token: str


def _seed(store: DuckDBStore) -> None:
    ingest_paths([FIXTURES / "agent" / "envelopes.jsonl"], store)
    ids = store.query("SELECT event_id FROM events ORDER BY time").column(0).to_pylist()
    t0, t1 = store.query("SELECT min(time), max(time) FROM events").to_pylist()[0].values()
    web = Entity("host", "web-01")
    save_findings(store, [
        Finding("shell_from_web", web, t0, t1, Severity.HIGH,
                (Signal("parent_is_web_server", "gunicorn", detail="sh under gunicorn"),
                 Signal("cmdline.zscore", 6.2, 3.0, "mean 1.1 std 0.8", "baseline")),
                title="Web server spawned a shell", techniques=("T1190", "T1059.004"),
                evidence=tuple(ids[:4])),
    ])  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The API and dashboard on a loopback port, over a seeded in-memory store."""
    store = DuckDBStore(":memory:")
    _seed(store)
    token, _ = create_token(ManagementStore(store), Role.ANALYST, "browser-test")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store=store), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", store, token)
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), or a skip that says why."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh browser page; console errors (a CSP violation, a script error) fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert errors == [], errors


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def shot() -> Callable[[Any, str], None]:
    """Save a full-page screenshot as a test artefact: ``shot(page, "name")``."""
    return _shot
