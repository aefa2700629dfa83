"""``POST /api/v1/hunts`` and the hunt console: a GET + DISP over the seeded store comes
back as columns and rows (capped, with the total); a hunt that cannot run is a 422 with its
line and column; hunts sent to the server cannot read files."""

from __future__ import annotations

from typing import Any

import pytest

HUNT = "procs = GET process\nDISP procs ATTR name, pid"
HX = {"HX-Request": "true"}


def test_get_and_disp_over_the_seeded_store(api: Any) -> None:
    got = api.post("/api/v1/hunts", role="analyst", json={"text": HUNT})
    assert got.status_code == 200, got.text
    [table] = got.json()["displays"]
    assert table["title"] == "procs" and table["columns"] == ["name", "pid"]
    assert {"name": "sh", "pid": 4120} in table["rows"]
    assert table["total"] == len(table["rows"]) and not table["truncated"]


def test_rows_are_capped_and_the_total_kept(api: Any) -> None:
    got = api.post("/api/v1/hunts", json={"text": HUNT, "max_rows": 1}).json()
    [table] = got["displays"]
    assert len(table["rows"]) == 1 and table["total"] > 1 and table["truncated"]


def test_syntax_error_is_422_with_line_and_column(api: Any) -> None:
    got = api.post("/api/v1/hunts", json={"text": "p = GET process\np2 = GET process WHERE"})
    assert got.status_code == 422
    body = got.json()
    assert (body["line"], body["column"]) == (2, 23), body
    assert body["detail"].startswith("unexpected") and body["expected"]


def test_unknown_variable_is_422_not_500(api: Any) -> None:
    got = api.post("/api/v1/hunts", json={"text": "DISP nope"})
    assert got.status_code == 422 and "nope" in got.json()["detail"]
    assert got.json()["line"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "p = GET process FROM /etc/passwd\nDISP p",
        "p = GET process FROM file:///etc/passwd\nDISP p",
        "p = LOAD /etc/passwd AS process",
        "p = GET process\nSAVE p TO /tmp/kestrel-hunt-leak.parquet",
        "p = GET process WHERE SIGMA '/etc/passwd'",
    ],
    ids=["from-path", "from-uri", "load", "save", "sigma-path"],
)
def test_hunts_cannot_touch_server_files(api: Any, text: str) -> None:
    got = api.post("/api/v1/hunts", json={"text": text})
    assert got.status_code == 422, got.text
    assert got.json()["line"] >= 1


def test_hunts_are_audited(api: Any) -> None:
    api.post("/api/v1/hunts", role="analyst", json={"text": HUNT})
    lines = api.get("/api/v1/audit").json()
    assert any(a["action"] == "hunt.run" and a["detail"]["text"] == HUNT for a in lines)


def test_console_page_runs_a_hunt_and_shows_errors(api: Any) -> None:
    api.client.post("/ui/login", data={"token": api.tokens["analyst"]})
    page = api.client.get("/ui/hunt")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert 'data-testid="hunt-text"' in page.text
    assert api.client.post("/ui/hunt", data={"text": HUNT}).status_code == 403  # no htmx header
    shown = api.client.post("/ui/hunt", data={"text": HUNT}, headers=HX)
    assert shown.status_code == 200 and "<td>gunicorn</td>" in shown.text
    bad = api.client.post("/ui/hunt", data={"text": "DISP"}, headers=HX)
    assert 'data-testid="hunt-error">line 1, column' in bad.text


def test_server_hunts_store_nothing(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server hunt only reads the store: stored hunt results (`kestrel.hunt.results`) are
    never looked up or written, however often a DISP repeats."""
    from kestrel.hunt import results

    asked: list[str] = []
    monkeypatch.setattr(results.StoredResults, "table_for", lambda self, sql: asked.append(sql))
    for _ in range(3):
        got = api.post("/api/v1/hunts", role="analyst", json={"text": HUNT})
        assert got.status_code == 200, got.text
    assert asked == []
