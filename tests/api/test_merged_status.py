"""When a merge folds stored findings into one, the merged finding keeps the most advanced
status among them and every status change (notes included) of each, whichever id it is
asked for by; a change made on the merged finding afterwards (a reopen) is its status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from kestrel.api import Role, create_app, create_token
from kestrel.api.findings import merged_status
from kestrel.api.schemas import Status
from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.pipeline import save_findings
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore, StatusChange

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
HOST = Entity("host", "web-01")


def span(start: int, end: int) -> Finding:
    """A finding of one detector and host from minute ``start`` to minute ``end``."""
    return Finding("shell_from_web", HOST, T + timedelta(minutes=start),
                   T + timedelta(minutes=end), Severity.HIGH,
                   (Signal("parent_is_web_server", "gunicorn"),), title="shell")  # fmt: skip


@pytest.fixture
def client() -> Iterator[tuple[TestClient, DuckDBStore, dict[str, str]]]:
    store = DuckDBStore()
    token, _ = create_token(ManagementStore(store), Role.ANALYST, "a")
    with TestClient(create_app(store=store)) as c:
        yield c, store, {"Authorization": f"Bearer {token}"}
    store.close()


def test_merge_keeps_the_most_advanced_status_and_every_note(
    client: tuple[TestClient, DuckDBStore, dict[str, str]],
) -> None:
    c, store, auth = client
    save_findings(store, [span(0, 10), span(60, 70)])  # an hour apart: two findings
    items = c.get("/api/v1/findings", headers=auth).json()["items"]
    late, early = (f["finding_id"] for f in items)  # newest first

    def post(fid: str, status: str, note: str) -> int:
        body = {"status": status, "note": note}
        return c.post(f"/api/v1/findings/{fid}/status", headers=auth, json=body).status_code

    assert post(early, "acknowledged", "looking") == 200
    assert post(late, "resolved", "patched gunicorn") == 200

    save_findings(store, [span(8, 62)])  # a span joining both: one finding now
    items = c.get("/api/v1/findings", headers=auth).json()["items"]
    assert [f["finding_id"] for f in items] == [early]  # the earlier id survives
    assert items[0]["status"] == "resolved"  # not the survivor's own "acknowledged"
    resolved = c.get("/api/v1/findings?status=resolved", headers=auth).json()
    assert resolved["total"] == 1

    for asked in (early, late):  # the folded id answers with the merged finding
        got = c.get(f"/api/v1/findings/{asked}", headers=auth).json()
        assert got["finding_id"] == early and got["status"] == "resolved"
        notes = [(h["status"], h["note"], h["finding_id"]) for h in got["history"]]
        assert notes == [("acknowledged", "looking", early),
                         ("resolved", "patched gunicorn", late)]  # fmt: skip

    # reopening the merged finding is allowed from its merged status, and sticks
    assert post(early, "acknowledged", "seen again") == 200
    got = c.get(f"/api/v1/findings/{late}", headers=auth).json()
    assert got["status"] == "acknowledged" and len(got["history"]) == 3
    assert c.get("/api/v1/findings", headers=auth).json()["items"][0]["status"] == "acknowledged"


def change(fid: str, status: str, minute: int) -> StatusChange:
    return StatusChange(fid, status, "", "a", T + timedelta(minutes=minute))


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        ([], None),
        ([change("keep", "acknowledged", 1)], Status.ACKNOWLEDGED),
        ([change("keep", "acknowledged", 1), change("gone", "false_positive", 0)],
         Status.FALSE_POSITIVE),
        ([change("keep", "resolved", 1), change("gone", "acknowledged", 2)], Status.RESOLVED),
        ([change("keep", "acknowledged", 3), change("gone", "resolved", 2)],
         Status.RESOLVED),  # folded before: the most advanced, whichever came last
        ([change("keep", "acknowledged", 3), change("gone", "acknowledged", 3)],
         Status.ACKNOWLEDGED),  # a change made to the merged finding (under both ids)
        ([change("keep", "resolved", 1), change("gone", "false_positive", 2)],
         Status.FALSE_POSITIVE),  # equally advanced: the later one
    ],
)  # fmt: skip
def test_merged_status_rule(latest: list[StatusChange], expected: Status | None) -> None:
    assert merged_status(latest) == expected
