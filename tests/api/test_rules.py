"""Sigma rule sets on and off: ``GET /api/v1/rules`` lists the server's sets, switching is
``PUT /api/v1/policies/sigma.rule_sets`` (validated, audited), the server's detection loop
follows the switches, and the rules page toggles a set for admins only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kestrel.api import ApiSettings, MemoryFindings, Role, create_app, create_token
from kestrel.api.detection import DetectionLoop
from kestrel.detect.sigma import SigmaDetector
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore

HX = {"HX-Request": "true"}
POLICY = "/api/v1/policies/sigma.rule_sets"


class Served:
    """A client over an app with two rule sets (one folder that exists, one that does not)."""

    def __init__(self, client: TestClient, tokens: dict[str, str], sets: tuple[str, str]):
        self.client, self.tokens, self.sets = client, tokens, sets

    def call(self, method: str, path: str, role: str = "admin", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    windows = tmp_path / "windows"
    windows.mkdir()
    sets = (str(windows), str(tmp_path / "cloud.zip"))
    store = DuckDBStore(":memory:")
    tokens = {r.value: create_token(ManagementStore(store), r, f"t-{r.value}")[0] for r in Role}
    app = create_app(ApiSettings(sigma_rules=sets), store=store, findings_source=MemoryFindings())
    with TestClient(app) as client:
        yield Served(client, tokens, sets)
    store.close()


def test_rule_sets_are_listed_on_until_switched_off(served: Served) -> None:
    windows, cloud = served.sets
    listed = served.call("GET", "/api/v1/rules", "analyst").json()
    assert listed == [{"path": windows, "enabled": True, "exists": True},
                      {"path": cloud, "enabled": True, "exists": False}]  # fmt: skip
    assert served.call("PUT", POLICY, json={"value": {cloud: False}}).status_code == 200
    states = {r["path"]: r["enabled"] for r in served.call("GET", "/api/v1/rules").json()}
    assert states == {windows: True, cloud: False}
    assert served.call("GET", "/api/v1/rules", "agent").status_code == 403


@pytest.mark.parametrize("value", [["a"], {"a": "off"}, "all", {"a": 1}])
def test_a_malformed_switch_is_422(served: Served, value: Any) -> None:
    got = served.call("PUT", POLICY, json={"value": value})
    assert got.status_code == 422 and "true / false" in got.json()["detail"]


def test_detection_loop_follows_the_switches(served: Served) -> None:
    windows, cloud = served.sets
    state = served.client.app.state.kestrel  # type: ignore[attr-defined]
    loop = DetectionLoop(state, 1.0)
    configured = loop.detectors
    loop._follow_rule_switches()
    assert loop.detectors is configured  # never switched: left as configured
    served.call("PUT", POLICY, json={"value": {cloud: False}})
    loop._follow_rule_switches()
    sigma = loop.detectors["sigma"]
    assert isinstance(sigma, SigmaDetector) and sigma.rules == (windows,)
    served.call("PUT", POLICY, json={"value": {cloud: False, windows: False}})
    loop._follow_rule_switches()
    assert "sigma" not in loop.detectors and "sigma" in configured


def test_rules_page_toggles_for_admins_only(served: Served) -> None:
    windows, _ = served.sets
    client = served.client
    client.post("/ui/login", data={"token": served.tokens["analyst"]})
    page = client.get("/ui/rules")
    assert (
        page.status_code == 200 and windows in page.text and 'data-testid="toggle"' not in page.text
    )
    form = {"path": windows, "enabled": "false"}
    assert client.post("/ui/rules", data=form, headers=HX).status_code == 403
    client.post("/ui/login", data={"token": served.tokens["admin"]})
    assert client.post("/ui/rules", data=form).status_code == 403  # the CSRF guard
    row = client.post("/ui/rules", data=form, headers=HX)
    assert 'data-testid="rule-state">off<' in row.text and "Turn on" in row.text
    assert client.post("/ui/rules", data={**form, "path": "/etc"}, headers=HX).status_code == 404
    audit = served.call("GET", "/api/v1/audit").json()
    assert any(a["action"] == "policy.set" and a["target"] == "sigma.rule_sets" for a in audit)
