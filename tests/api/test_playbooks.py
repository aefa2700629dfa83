"""``/api/v1/playbooks``, ``/api/v1/runs`` and approvals, and the playbooks page: the
server lists the repository's playbooks and the runs `kestrel playbook run` left in the
responder's folder; only an admin approves, and an approval resumes that very run (under
no response policy, so every action is a dry run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kestrel.api import ApiSettings, MemoryFindings, Role, create_app, create_token
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.respond import load_playbook, recording_actions
from kestrel.respond.local import ResponsePaths, local_executor
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
HX = {"HX-Request": "true"}
T0 = datetime(2024, 5, 1, 13, 41, tzinfo=UTC)


class Served:
    """A client over an app with a responder folder holding one run waiting for approval."""

    def __init__(self, client: TestClient, tokens: dict[str, str], run_id: str) -> None:
        self.client, self.tokens, self.run_id = client, tokens, run_id

    def call(self, method: str, path: str, role: str) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.client.request(method, path, headers=headers)


def _pending_run(root: Path) -> str:
    """`kestrel playbook run`'s part: cloud-key-abuse starts and waits for approval."""
    finding = Finding("cloud.key_abuse", Entity("user", "svc-backup"), T0, T0, Severity.HIGH,
                      (Signal("iam_calls", 40.0, 10.0),), title="IAM burst")  # fmt: skip
    event = {"user_name": "svc-backup", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}
    ex = local_executor(ResponsePaths(root), None, "cli:test", recording_actions())
    [run] = ex.respond(finding, [load_playbook(PLAYBOOKS / "cloud-key-abuse.yml")], [event])
    assert str(run.status) == "pending_approval"
    return run.run_id


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    run_id = _pending_run(tmp_path)
    store = DuckDBStore(":memory:")
    tokens = {r.value: create_token(ManagementStore(store), r, f"t-{r.value}")[0] for r in Role}
    settings = ApiSettings(playbooks=(str(PLAYBOOKS),), response_home=str(tmp_path))
    app = create_app(settings, store=store, findings_source=MemoryFindings())
    with TestClient(app) as client:
        yield Served(client, tokens, run_id)
    store.close()


@pytest.mark.parametrize("role", ["admin", "analyst", "agent"])
def test_reading_playbooks_and_runs_is_for_staff(served: Served, role: str) -> None:
    for path in ("/api/v1/playbooks", "/api/v1/runs"):
        got = served.call("GET", path, role)
        assert got.status_code == (403 if role == "agent" else 200), (path, got.text)


@pytest.mark.parametrize("role", ["analyst", "agent"])
def test_only_an_admin_approves(served: Served, role: str) -> None:
    got = served.call("POST", f"/api/v1/runs/{served.run_id}/approve", role)
    assert got.status_code == 403 and f"role {role} may not" in got.json()["detail"]
    waiting = served.call("GET", "/api/v1/runs?status=pending_approval", "admin").json()
    assert [r["run_id"] for r in waiting] == [served.run_id]


def test_playbooks_are_listed_with_trigger_steps_and_approval(served: Served) -> None:
    books = {b["name"]: b for b in served.call("GET", "/api/v1/playbooks", "analyst").json()}
    assert set(books) == {"cloud-key-abuse", "malware-process", "notify-critical"}
    key = books["cloud-key-abuse"]
    assert key["requires_approval"] and key["cooldown"] == 3600
    assert key["steps"] == ["disable_access_key", "attach_deny_policy"]
    assert key["trigger"]["entity_type"] == "user"


def test_approve_flow(served: Served) -> None:
    url = f"/api/v1/runs/{served.run_id}/approve"
    done = served.call("POST", url, "admin")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "completed" and body["approved_by"] == "admin:t-admin"
    steps = [(o["action"], o["ok"]) for o in body["outcomes"]]
    assert steps == [("disable_access_key", True), ("attach_deny_policy", True)], body
    assert {o["verdict"] for o in body["outcomes"]} == {"dry_run"}  # no policy: nothing touched
    assert served.call("GET", "/api/v1/runs?status=pending_approval", "admin").json() == []
    assert served.call("POST", url, "admin").status_code == 409
    assert served.call("POST", "/api/v1/runs/r-000000000000/approve", "admin").status_code == 404
    audit = served.call("GET", "/api/v1/audit", "admin").json()
    assert any(a["action"] == "run.approve" and a["target"] == served.run_id for a in audit)


def test_without_a_responder_there_are_no_runs(api: Any) -> None:
    assert api.get("/api/v1/runs").json() == [] and api.get("/api/v1/playbooks").json() == []
    assert api.post("/api/v1/runs/r-000000000000/approve").status_code == 404


def test_playbooks_page_approve_button_is_for_admins(served: Served) -> None:
    client = served.client
    client.post("/ui/login", data={"token": served.tokens["analyst"]})
    page = client.get("/ui/playbooks")
    assert page.status_code == 200 and "cloud-key-abuse" in page.text
    assert served.run_id in page.text and 'data-testid="approve"' not in page.text
    url = f"/ui/runs/{served.run_id}/approve"
    assert client.post(url, headers=HX).status_code == 403
    client.post("/ui/login", data={"token": served.tokens["admin"]})
    assert 'data-testid="approve"' in client.get("/ui/playbooks").text
    assert client.post(url).status_code == 403  # no htmx header: the CSRF guard
    row = client.post(url, headers=HX)
    assert row.status_code == 200 and "completed</span> by admin:t-admin" in row.text
