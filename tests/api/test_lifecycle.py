"""A finding keeps its id and its status while detection runs again over events that
extend it (`Finding.key`), and an id folded into another by a merge still resolves."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from tests.api.cloud_events import T9, denied_storm, send

from kestrel.api import Role, create_app, create_token
from kestrel.detect.cloud.api_abuse import CloudAPIAbuseDetector
from kestrel.findings import Finding
from kestrel.pipeline import load_findings, run_detection, save_findings
from kestrel.store import DuckDBStore
from kestrel.store.findings import FindingsTable
from kestrel.store.management import ManagementStore


def _detect(store: DuckDBStore) -> None:
    run_detection(store, {"api_abuse": CloudAPIAbuseDetector()}, profiles=False)


def test_acknowledged_finding_keeps_status_when_new_events_extend_it(store: DuckDBStore):
    token, _ = create_token(ManagementStore(store), Role.ADMIN, "a")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store=store)) as client:
        send(client, headers, denied_storm(T9))
        _detect(store)
        [item] = client.get("/api/v1/findings", headers=headers).json()["items"]
        fid = item["finding_id"]
        ack = client.post(f"/api/v1/findings/{fid}/status", headers=headers,
                          json={"status": "acknowledged", "note": "looking"})  # fmt: skip
        assert ack.status_code == 200
        send(client, headers, denied_storm(T9 + timedelta(minutes=5)))
        _detect(store)
        [item] = client.get("/api/v1/findings", headers=headers).json()["items"]
        assert item["finding_id"] == fid
        assert item["status"] == "acknowledged"
        assert item["evidence_count"] == 24  # both storms, one finding
        detail = client.get(f"/api/v1/findings/{fid}", headers=headers).json()
        assert [h["note"] for h in detail["history"]] == ["looking"]


def test_a_finding_folded_into_an_earlier_one_still_resolves(store: DuckDBStore):
    [a] = _findings_of(denied_storm(T9))
    [b] = _findings_of(denied_storm(T9 + timedelta(minutes=12)))
    save_findings(store, [a, b])
    assert len(load_findings(store)) == 2
    [bridge] = _findings_of(denied_storm(T9 + timedelta(minutes=6)))
    save_findings(store, [bridge])
    [merged] = load_findings(store)
    assert merged.finding_id == a.finding_id
    assert FindingsTable(store).resolve(b.finding_id) == a.finding_id


def _findings_of(records: list[dict[str, object]]) -> list[Finding]:
    s = DuckDBStore(":memory:")
    try:
        token, _ = create_token(ManagementStore(s), Role.ADMIN, "x")
        with TestClient(create_app(store=s)) as client:
            send(client, {"Authorization": f"Bearer {token}"}, records)
        _detect(s)
        return load_findings(s)
    finally:
        s.close()
