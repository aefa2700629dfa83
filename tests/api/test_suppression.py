"""A false positive set through the API is honoured by detection: `kestrel detect` over
new events that would raise the same finding again raises nothing, and the suppression
shows in the finding's detail and the audit log. Suppressions end when they expire."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.cloud_events import T9, denied_storm, send

from kestrel.api import Role, create_app, create_token
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.pipeline.suppress import split_suppressed
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore, Suppression


@contextmanager
def _api(db: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API over the DuckDB file (closed after, so the CLI can open it)."""
    store = DuckDBStore(str(db))
    try:
        token, _ = create_token(ManagementStore(store), Role.ADMIN, "t")
        with TestClient(create_app(store=store)) as client:
            yield client, {"Authorization": f"Bearer {token}"}
    finally:
        store.close()


def _kestrel_detect(db: Path) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "KESTREL_SIGMA_RULES"}
    out = subprocess.run([sys.executable, "-m", "kestrel", "detect", "--db", str(db), "--json",
                          "--no-enrich"], capture_output=True, text=True, timeout=300,
                         check=False, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.slow
def test_false_positive_is_not_raised_again_by_kestrel_detect(tmp_path: Path):
    db = tmp_path / "k.duckdb"
    with _api(db) as (client, h):
        send(client, h, denied_storm(T9))
    assert [f["detector"] for f in _kestrel_detect(db)] == ["api_abuse"]
    with _api(db) as (client, h):
        [item] = client.get("/api/v1/findings", headers=h).json()["items"]
        fid = item["finding_id"]
        fp = client.post(f"/api/v1/findings/{fid}/status", headers=h,
                         json={"status": "false_positive", "note": "pentest"})  # fmt: skip
        assert fp.status_code == 200, fp.text
        send(client, h, denied_storm(T9 + timedelta(hours=3)))
    assert _kestrel_detect(db) == []  # the same storm again: suppressed
    with _api(db) as (client, h):
        page = client.get("/api/v1/findings", headers=h).json()
        assert [i["finding_id"] for i in page["items"]] == [fid]
        detail = client.get(f"/api/v1/findings/{fid}", headers=h).json()
        [s] = detail["suppressions"]
        assert (s["signals"], s["note"], s["active"]) == (["api.error_rate"], "pentest", True)
        audit = client.get("/api/v1/audit", headers=h).json()
        assert "suppression.create" in {a["action"] for a in audit}


def _finding(*signals: str) -> Finding:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    return Finding("api_abuse", Entity("principal", "alice"), t, t, Severity.MEDIUM,
                   tuple(Signal(n, 1.0) for n in signals))  # fmt: skip


def _suppression(signals: tuple[str, ...], expires: datetime | None = None) -> Suppression:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    return Suppression("api_abuse", "principal", "alice", "x", "", "a", t, signals, expires)


def test_a_new_kind_of_signal_is_not_suppressed():
    s = _suppression(("api.error_rate",))
    now = datetime.now(UTC)
    kept, dropped = split_suppressed(
        [_finding("api.error_rate"), _finding("api.error_rate", "api.regions")], [s], now
    )
    assert [len(f.signals) for f in kept] == [2] and len(dropped) == 1


def test_an_expired_suppression_no_longer_holds():
    now = datetime.now(UTC)
    gone = _suppression((), expires=now - timedelta(seconds=1))
    kept, _ = split_suppressed([_finding("api.error_rate")], [gone], now)
    assert len(kept) == 1


def test_suppress_days_sets_the_expiry(api):
    page = api.get("/api/v1/findings?detector=gpu_hijack").json()
    fid = page["items"][0]["finding_id"]
    res = api.post(f"/api/v1/findings/{fid}/status",
                   json={"status": "false_positive", "suppress_days": 7})  # fmt: skip
    assert res.status_code == 200
    [s] = ManagementStore(api.store).suppressions()
    assert s.expires is not None and timedelta(days=6) < s.expires - s.time <= timedelta(days=7)
    assert s.signals == ("gpu_util.zscore",)
