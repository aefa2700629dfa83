"""VirusTotal v3 client against a local HTTP server that answers like the real API (never
the internet): key header, 404 for unknown, 429 then success (retry with back-off), pacing,
disk cache across restarts, no key → one notice; the enricher's per-batch budget."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from kestrel.enrich.cache import DiskCache
from kestrel.enrich.reputation import (
    MemoryReputation,
    ReputationEnricher,
    Verdict,
    VirusTotalClient,
)
from kestrel.events import make_batch

BAD = "a" * 64
FLAKY = "b" * 64
KEY = "test-key"


class FakeVirusTotal(BaseHTTPRequestHandler):
    """Answers GET /api/v3/files/<hash> and /ip_addresses/<ip> in VirusTotal's shape."""

    seen: list[str] = []  # noqa: RUF012 (shared on purpose: the tests read it)
    flaky_left = 0

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        if self.headers.get("x-apikey") != KEY:
            return self._send(401, {"error": {"code": "WrongCredentialsError"}})
        if self.path.endswith(FLAKY) and type(self).flaky_left > 0:
            type(self).flaky_left -= 1
            return self._send(429, {"error": {"code": "QuotaExceededError"}})
        if self.path.endswith((BAD, FLAKY, "/ip_addresses/8.8.4.4")):
            stats = {"malicious": 12, "suspicious": 1, "undetected": 50, "harmless": 7}
            return self._send(200, {"data": {"attributes": {"last_analysis_stats": stats}}})
        return self._send(404, {"error": {"code": "NotFoundError", "message": "not found"}})

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeVirusTotal.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVirusTotal)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v3"
    httpd.shutdown()
    httpd.server_close()


class FakeTime:
    """An injected clock and sleep: pacing and back-off are checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _client(url: str, tmp_path: Path, t: FakeTime, key: str | None = KEY) -> VirusTotalClient:
    return VirusTotalClient(api_key=key, base_url=url, cache=DiskCache(tmp_path / "vt.sqlite"),
                            sleep=t.sleep, clock=t.clock, rate_per_minute=4)  # fmt: skip


def test_verdicts_unknown_and_pacing(server: str, tmp_path: Path):
    t = FakeTime()
    vt = _client(server, tmp_path, t)
    assert vt.lookup("hash", BAD) == Verdict(12, 70)
    assert vt.lookup("hash", "c" * 64) == Verdict(0, 0)  # 404: never seen
    assert vt.lookup("ip", "8.8.4.4") == Verdict(12, 70)
    assert FakeVirusTotal.seen[0] == f"/api/v3/files/{BAD}"
    assert t.slept == [15.0, 15.0]  # 4 per minute: one call every 15 s


def test_retry_with_backoff_on_429(server: str, tmp_path: Path):
    FakeVirusTotal.flaky_left = 2
    t = FakeTime()
    vt = _client(server, tmp_path, t)
    vt.rate_per_minute = 6000.0  # isolate the back-off from the pacing
    assert vt.lookup("hash", FLAKY) == Verdict(12, 70)
    assert vt.calls == 3
    assert [s for s in t.slept if s >= 1] == [2.0, 4.0]


def test_disk_cache_survives_a_restart(server: str, tmp_path: Path):
    _client(server, tmp_path, FakeTime()).lookup("hash", BAD)
    again = _client(server, tmp_path, FakeTime())
    assert again.lookup("hash", BAD) == Verdict(12, 70)
    assert again.calls == 0 and len(FakeVirusTotal.seen) == 1


def test_no_key_one_notice_and_skip(server: str, tmp_path: Path, caplog):
    vt = _client(server, tmp_path, FakeTime(), key=None)
    with caplog.at_level(logging.WARNING, logger="kestrel.enrich.reputation"):
        assert vt.lookup("hash", BAD) is None
        assert vt.lookup("hash", FLAKY) is None
    assert [r.getMessage() for r in caplog.records] == [
        "no VirusTotal API key (set VT_API_KEY): reputation lookups skipped"]  # fmt: skip
    assert FakeVirusTotal.seen == []


def test_wrong_key_disables_the_client(server: str, tmp_path: Path):
    vt = _client(server, tmp_path, FakeTime(), key="wrong")
    assert vt.lookup("hash", BAD) is None
    assert vt.lookup("hash", FLAKY) is None
    assert len(FakeVirusTotal.seen) == 1


def _batch() -> pa.Table:
    return make_batch(
        {"event_id": ["p", "n", "priv", "none"], "class": ["process", "network", "network", "file"],
         "process_sha256": [BAD, None, None, None], "direction": [None, "outbound", None, None],
         "dst_ip": [None, "8.8.4.4", "10.1.1.1", None]}, 4)  # fmt: skip


def test_enricher_hash_then_public_ip():
    rep = MemoryReputation({("hash", BAD): Verdict(30, 70), ("ip", "8.8.4.4"): Verdict(1, 90)})
    out = ReputationEnricher(rep).enrich(_batch())
    assert out.column("rep_malicious").to_pylist() == [30, 1, None, None]
    assert out.column("rep_engines").to_pylist() == [70, 90, None, None]


def test_enricher_budget_limits_api_calls(server: str, tmp_path: Path):
    vt = _client(server, tmp_path, FakeTime())
    out = ReputationEnricher(vt, budget=1).enrich(_batch())
    assert vt.calls == 1
    assert out.column("rep_malicious").null_count == 3
