"""Findings: filters, detail with signals and evidence events, the status workflow with
notes, false positives fed back as suppressions, and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kestrel.store.management import ManagementStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def ids(page: dict[str, Any]) -> list[str]:
    return [f["detector"] for f in page["items"]]


def first_id(api: Any, detector: str = "shell_from_web") -> str:
    items = api.get(f"/api/v1/findings?detector={detector}").json()["items"]
    return items[0]["finding_id"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["shell_from_web", "gpu_hijack"]),
        ("?severity=high", ["shell_from_web"]),
        ("?severity=medium", ["shell_from_web", "gpu_hijack"]),
        ("?technique=T1496", ["gpu_hijack"]),
        ("?technique=T1059", ["shell_from_web"]),
        ("?entity=web-01", ["shell_from_web"]),
        ("?entity=workload:ft-llama-7f3a", ["gpu_hijack"]),
        ("?detector=gpu_hijack", ["gpu_hijack"]),
        ("?start=2024-05-02T00:00:00Z", []),
        ("?end=2024-05-01T00:00:00Z", []),
        ("?status=new", ["shell_from_web", "gpu_hijack"]),
        ("?status=resolved", []),
    ],
)
def test_list_filters(api, query, expected):
    page = api.get(f"/api/v1/findings{query}").json()
    assert sorted(ids(page)) == sorted(expected)


def test_pages_cover_the_list_once(api):
    one = api.get("/api/v1/findings?limit=1").json()
    two = api.get("/api/v1/findings?limit=1&offset=1").json()
    assert one["total"] == two["total"] == 2
    assert sorted(ids(one) + ids(two)) == ["gpu_hijack", "shell_from_web"]


def test_detail_has_signals_evidence_events_and_history(api):
    got = api.get(f"/api/v1/findings/{first_id(api)}").json()
    signal = {"name": "parent_is_web_server", "value": "gunicorn", "threshold": None,
              "detail": "sh under gunicorn", "kind": "rule"}  # fmt: skip
    assert got["signals"] == [signal]
    assert len(got["evidence_events"]) == 3
    assert {e["event_id"] for e in got["evidence_events"]} == set(got["evidence"])
    assert got["status"] == "new" and got["history"] == []


def test_workflow_new_acknowledged_resolved_with_notes_and_audit(api):
    fid = first_id(api)
    url = f"/api/v1/findings/{fid}/status"
    assert api.post(url, json={"status": "acknowledged", "note": "looking"}).json()["status"] == (
        "acknowledged")  # fmt: skip
    assert api.post(url, role="analyst", json={"status": "resolved", "note": "reimaged"}).is_success
    detail = api.get(f"/api/v1/findings/{fid}").json()
    assert [(h["status"], h["note"], h["actor"]) for h in detail["history"]] == [
        ("acknowledged", "looking", "admin:test-admin"),
        ("resolved", "reimaged", "analyst:test-analyst"),
    ]
    assert api.get("/api/v1/findings?status=resolved").json()["total"] == 1
    audit = api.get("/api/v1/audit").json()
    assert [a["detail"]["to"] for a in audit if a["action"] == "finding.status"] == [
        "resolved", "acknowledged"]  # fmt: skip


def test_a_disallowed_transition_is_409(api):
    fid = first_id(api)
    url = f"/api/v1/findings/{fid}/status"
    api.post(url, json={"status": "resolved"})
    got = api.post(url, json={"status": "false_positive"})
    assert got.status_code == 409 and "resolved finding cannot become" in got.json()["detail"]


def test_false_positive_becomes_a_suppression(api):
    fid = first_id(api, "gpu_hijack")
    api.post(
        f"/api/v1/findings/{fid}/status", json={"status": "false_positive", "note": "benchmark"}
    )
    [s] = ManagementStore(api.store).suppressions()
    assert (s.detector, s.entity_type, s.entity_id, s.note) == (
        "gpu_hijack", "workload", "ft-llama-7f3a", "benchmark")  # fmt: skip


def test_unknown_finding_is_404_and_bad_status_is_422(api):
    assert api.get("/api/v1/findings/abc123").status_code == 404
    assert (
        api.post("/api/v1/findings/abc123/status", json={"status": "acknowledged"}).status_code
        == 404
    )
    assert (
        api.post(f"/api/v1/findings/{first_id(api)}/status", json={"status": "done"}).status_code
        == 422
    )


def test_entities_profile_and_timeline(api):
    listed = api.get("/api/v1/entities").json()
    web = next(e for e in listed if e["id"] == "web-01")
    assert web["type"] == "host" and web["findings"] == 1 and web["events"] >= 1
    profile = api.get("/api/v1/entities/host/web-01").json()
    assert profile["sources"] == ["agent"] and profile["finding_items"][0]["detector"] == (
        "shell_from_web")  # fmt: skip
    timeline = api.get("/api/v1/entities/host/web-01/timeline?bucket=minute").json()
    assert sum(p["events"] for p in timeline) == profile["events"]
    assert api.get("/api/v1/entities/host/nobody").status_code == 404


def test_metrics_count_intake_and_findings(api):
    api.post(
        "/api/v1/events", role="agent", content=(FIXTURES / "agent" / "bad.jsonl").read_bytes()
    )
    api.post("/api/v1/events", role="agent", content=b"{broken\n",
             headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    text = api.get("/metrics").text
    assert 'kestrel_findings{severity="high",status="new"} 1.0' in text
    assert 'kestrel_intake_requests_total{code="422"} 1.0' in text
    assert 'kestrel_events_rejected_total{format="agent"} 7.0' in text
    assert (
        'kestrel_stage_seconds_count{stage="store"} 1.0' in text
        and "kestrel_queue_depth 0.0" in text
    )


def test_policies_are_set_by_admins_and_audited(api):
    api.client.put(
        "/api/v1/policies/gpu_hijack.z", json={"value": 5.0}, headers=api.headers("admin")
    )
    assert api.get("/api/v1/policies", role="analyst").json() == {"gpu_hijack.z": 5.0}
    assert api.get("/api/v1/audit").json()[0]["action"] == "policy.set"
