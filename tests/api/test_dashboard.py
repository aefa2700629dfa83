"""The dashboard pages without a browser: login and its refusals, every page renders, the
status action, the CSRF guard, the live scenario's steps. (Browser tests: tests/web.)"""

from __future__ import annotations

from typing import Any

HX = {"HX-Request": "true"}


def login(api: Any, role: str = "analyst") -> None:
    got = api.client.post("/ui/login", data={"token": api.tokens[role]}, follow_redirects=False)
    assert got.status_code == 303 and "httponly" in got.headers["set-cookie"].lower()
    assert "samesite=strict" in got.headers["set-cookie"].lower()


def test_pages_need_a_login_and_agents_cannot_log_in(api):
    assert api.client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
    refused = api.client.post("/ui/login", data={"token": api.tokens["agent"]})
    assert "not valid here" in refused.text and "kestrel_token" not in refused.headers.get(
        "set-cookie", ""
    )
    assert "not valid here" in api.client.post("/ui/login", data={"token": "kst_x_y"}).text


def test_every_page_renders_with_a_strict_csp(api):
    login(api)
    fid = api.get("/api/v1/findings?detector=shell_from_web").json()["items"][0]["finding_id"]
    for path in ("/ui/", "/ui/findings", f"/ui/findings/{fid}", "/ui/entities/host/web-01",
                 "/ui/live", "/ui/audit", "/ui/hunt", "/ui/playbooks", "/ui/rules",
                 "/ui/findings?severity=high&status=new"):  # fmt: skip
        got = api.client.get(path)
        assert got.status_code == 200, path
        assert "script-src 'self'" in got.headers["content-security-policy"]
    overview = api.client.get("/ui/").text
    assert "T1059.004" in overview and "Web server spawned a shell" not in overview
    assert "Web server spawned a shell" in api.client.get("/ui/findings").text


def test_status_action_needs_htmx_and_answers_the_panel(api):
    login(api)
    fid = api.get("/api/v1/findings?detector=gpu_hijack").json()["items"][0]["finding_id"]
    url = f"/ui/findings/{fid}/status"
    assert api.client.post(url, data={"status": "acknowledged"}).status_code == 403
    got = api.client.post(url, data={"status": "acknowledged", "note": "on it"}, headers=HX)
    assert 'data-testid="status">acknowledged<' in got.text and "on it" in got.text
    again = api.client.post(url, data={"status": "acknowledged"}, headers=HX)
    assert again.status_code == 409


def test_live_scenario_streams_and_finds_the_gpu_hijack(api):
    login(api)
    start = api.client.post("/ui/live", data={"scenario": "gpu_hijack"}, headers=HX)
    assert "hour 0 of 24" in start.text
    run_id = next(iter(api.client.app.state.kestrel.live_runs))
    for _ in range(3):
        step = api.client.post(f"/ui/live/{run_id}/step", headers=HX)
    assert 'data-testid="verdict">malicious<' in step.text and "GPU hijack" in step.text
    listed = api.get("/api/v1/findings?detector=gpu_hijack").json()["items"]
    assert any("live-scenario" in f["tags"] for f in listed)


def test_logout_forgets_the_cookie(api):
    login(api)
    api.client.post("/ui/logout")
    assert api.client.get("/ui/", follow_redirects=False).status_code == 303
