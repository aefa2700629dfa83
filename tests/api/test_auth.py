"""Every role against every route family, allowed and denied; bad, expired and revoked
tokens; the agent's narrow view; the dashboard cookie's CSRF guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kestrel.api import FindingQuery, Role, verify_token
from kestrel.api.auth import hash_secret
from kestrel.store.management import ManagementStore, TokenRecord

AGENT_LINE = (
    b'{"agent_id":"AGENT-9","event_type":"system","timestamp":"2024-05-01T13:00:00Z",'
    b'"payload":{"hostname":"db-01","os":"linux"}}\n'
)
FINDING = "/api/v1/findings/{fid}"
# (method, path, body, roles allowed); one row per route family.
ROUTES = [
    ("GET", "/api/v1/findings", None, {"admin", "analyst"}),
    ("GET", FINDING, None, {"admin", "analyst"}),
    ("POST", FINDING + "/status", {"status": "acknowledged"}, {"admin", "analyst"}),
    ("GET", "/api/v1/entities", None, {"admin", "analyst"}),
    ("GET", "/api/v1/entities/host/web-01", None, {"admin", "analyst"}),
    ("GET", "/api/v1/agents", None, {"admin", "analyst"}),
    ("POST", "/api/v1/agents/AGENT-9/actions", {"kind": "isolate_host"}, {"admin"}),
    ("GET", "/api/v1/agents/me/actions", None, {"agent"}),
    ("GET", "/api/v1/tokens", None, {"admin"}),
    ("POST", "/api/v1/tokens", {"role": "analyst", "name": "x"}, {"admin"}),
    ("GET", "/api/v1/audit", None, {"admin", "analyst"}),
    ("GET", "/api/v1/policies", None, {"admin", "analyst"}),
    ("PUT", "/api/v1/policies/gpu.z", {"value": 4.0}, {"admin"}),
    ("GET", "/api/v1/playbooks", None, {"admin", "analyst"}),
    ("GET", "/api/v1/runs", None, {"admin", "analyst"}),
    ("GET", "/api/v1/rules", None, {"admin", "analyst"}),
    ("POST", "/api/v1/hunts", {"text": "p = GET process\nDISP p"}, {"admin", "analyst"}),
    ("POST", "/api/v1/events", AGENT_LINE, {"admin", "agent"}),
    ("GET", "/metrics", None, {"admin", "analyst"}),
    ("GET", "/readyz", None, {"admin", "analyst", "agent"}),
]


def _call(api: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    fid = api.findings.findings(FindingQuery())[0]
    url = path.format(fid=fid.finding_id)
    if isinstance(body, bytes):
        return api.client.request(method, url, content=body, headers=headers)
    return api.client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])  # fmt: skip
def test_role_matrix(api, role, method, path, body, allowed):
    got = _call(api, method, path, body, api.headers(role))
    if role in allowed:
        assert got.status_code < 300, got.text
    else:
        assert got.status_code == 403, got.text
        assert f"role {role} may not" in got.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])  # fmt: skip
def test_no_token_is_401_everywhere(api, method, path, body, allowed):
    got = _call(api, method, path, body, {})
    assert got.status_code == 401
    assert got.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "kst_abc", "kst_000000000000_secret", "Bearer x y"],
    ids=["empty", "garbage", "short", "unknown-id", "spaces"],
)
def test_malformed_and_unknown_tokens_are_401(api, token):
    got = api.client.get("/api/v1/findings", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 401


def test_right_id_wrong_secret_is_401(api):
    token_id = api.tokens["admin"].split("_")[1]
    got = api.client.get("/api/v1/findings", headers={"Authorization": f"Bearer kst_{token_id}_x"})
    assert got.status_code == 401


def test_expired_token_is_401(api):
    mgmt = ManagementStore(api.store)
    past = datetime.now(UTC) - timedelta(hours=2)
    mgmt.add_token(TokenRecord("0123456789ab", "old", "admin", hash_secret("s3cret"), None,
                               past - timedelta(days=1), past, False))  # fmt: skip
    assert verify_token(mgmt, "kst_0123456789ab_s3cret", at=past - timedelta(hours=1))
    got = api.client.get(
        "/api/v1/findings", headers={"Authorization": "Bearer kst_0123456789ab_s3cret"}
    )
    assert got.status_code == 401


def test_revoked_token_is_401_at_once(api):
    created = api.post("/api/v1/tokens", json={"role": "analyst", "name": "temp"}).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert api.client.get("/api/v1/findings", headers=headers).status_code == 200
    assert api.client.delete(f"/api/v1/tokens/{created['token_id']}",
                             headers=api.headers("admin")).status_code == 200  # fmt: skip
    assert api.client.get("/api/v1/findings", headers=headers).status_code == 401


def test_tokens_are_stored_hashed_and_never_listed(api):
    created = api.post("/api/v1/tokens", json={"role": "agent", "name": "web-01"}).json()
    secret = created["token"].split("_", 2)[2]
    stored = api.store.query("SELECT * FROM api_tokens").to_pylist()
    assert all(secret not in str(row) for row in stored)
    assert hash_secret(secret) in {row["secret_hash"] for row in stored}
    listed = api.get("/api/v1/tokens").text
    assert secret not in listed and "secret_hash" not in listed


def test_agent_reading_findings_is_403(api):
    assert api.get("/api/v1/findings", role="agent").status_code == 403


def test_agent_sees_only_its_own_actions(api):
    mine = api.tokens["agent"]
    agent_id = "test-agent"
    api.post(f"/api/v1/agents/{agent_id}/actions", json={"kind": "kill_process",
                                                        "params": {"pid": 4131}})  # fmt: skip
    api.post("/api/v1/agents/other/actions", json={"kind": "isolate_host"})
    got = api.client.get("/api/v1/agents/me/actions", headers={"Authorization": f"Bearer {mine}"})
    assert [(a["agent_id"], a["kind"]) for a in got.json()] == [(agent_id, "kill_process")]


def test_healthz_needs_no_token(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_cookie_counts_for_reads_but_not_for_writes_without_htmx_header(api):
    fid = api.get("/api/v1/findings").json()["items"][0]["finding_id"]
    api.client.cookies.set("kestrel_token", api.tokens["analyst"])
    assert api.client.get("/api/v1/findings").status_code == 200
    url = f"/api/v1/findings/{fid}/status"
    assert api.client.post(url, json={"status": "acknowledged"}).status_code == 401
    ok = api.client.post(url, json={"status": "acknowledged"}, headers={"HX-Request": "true"})
    assert ok.status_code == 200
