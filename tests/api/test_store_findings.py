"""The API over findings the pipeline stored (the default `kestrel serve` source)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kestrel.api import Role, create_app, create_token
from kestrel.pipeline import save_findings
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore


def test_findings_saved_by_the_pipeline_are_listed_and_triaged(store: DuckDBStore, findings_for):
    save_findings(store, findings_for(store))
    token, _ = create_token(ManagementStore(store), Role.ANALYST, "a")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store=store)) as client:
        page = client.get("/api/v1/findings?severity=high", headers=headers).json()
        assert [f["detector"] for f in page["items"]] == ["shell_from_web"]
        fid = page["items"][0]["finding_id"]
        assert client.get(f"/api/v1/findings/{fid}", headers=headers).json()["title"] == (
            "Web server spawned a shell"
        )
        done = client.post(f"/api/v1/findings/{fid}/status", headers=headers,
                           json={"status": "acknowledged"})  # fmt: skip
        assert done.json()["status"] == "acknowledged"
