"""``POST /api/v1/events``: the formats, the limits, and bad data answered 413 / 422 with
reasons (never 500), resends counted as duplicates."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

ENVELOPES = (FIXTURES / "agent" / "envelopes.jsonl").read_bytes()
BAD = (FIXTURES / "agent" / "bad.jsonl").read_bytes()


def envelope(i: int, host: str = "web-02") -> dict[str, object]:
    return {"agent_id": "A1", "event_type": "process", "timestamp": 1714570867 + i,
            "payload": {"action": "start", "pid": i, "name": "sh", "hostname": host}}  # fmt: skip


def send(api, body: bytes, role: str = "agent", **headers: str):
    return api.post("/api/v1/events", role=role, content=body, headers=headers)


def test_json_lines_are_stored_and_a_resend_is_all_duplicates(api):
    body = b"\n".join(json.dumps(envelope(i)).encode() for i in range(10))
    first = send(api, body).json()
    assert (first["format"], first["read"], first["stored"], first["duplicates"]) == (
        "agent", 10, 10, 0)  # fmt: skip
    again = send(api, body).json()
    assert (again["stored"], again["duplicates"]) == (0, 10)


def test_json_array_and_gzip_give_the_same_events(api):
    array = json.dumps([envelope(i) for i in range(5)]).encode()
    assert send(api, array).json()["stored"] == 5
    lines = b"\n".join(json.dumps(envelope(i)).encode() for i in range(5))
    zipped = send(api, gzip.compress(lines), **{"Content-Encoding": "gzip"}).json()
    assert (zipped["stored"], zipped["duplicates"]) == (0, 5)


def test_the_fixture_envelopes_are_already_there(api):
    got = send(api, ENVELOPES).json()
    assert (got["read"], got["stored"], got["duplicates"]) == (8, 0, 8)


def test_partly_bad_batch_is_200_with_each_rejection_and_reason(api):
    got = send(api, BAD)
    assert got.status_code == 200
    body = got.json()
    assert (body["read"], body["stored"], body["rejected"]) == (9, 2, 7)
    assert [r["line"] for r in body["rejections"]] == [2, 3, 4, 5, 6, 7, 8]
    assert all(r["reason"] for r in body["rejections"])
    assert api.store.stats().rejected == 7


def test_all_bad_is_422_with_reasons(api):
    got = api.post("/api/v1/events?format=agent", role="agent", content=b"{not json\n{also\n")
    assert got.status_code == 422
    assert got.json()["detail"] == "no record could be read"
    assert "malformed JSON" in got.json()["rejections"][0]["reason"]


def test_unknown_format_and_empty_body_are_422(api):
    unknown = send(api, b'{"hello": 1}\n').json()["detail"]
    assert unknown.startswith("unknown format; name one with ?format= (agent, ")
    assert send(api, b"").status_code == 422
    named = api.post("/api/v1/events?format=nosuch", role="agent", content=ENVELOPES)
    assert named.status_code == 422 and "nosuch" in named.json()["detail"]


def test_limits_are_413_with_the_reason(small_api):
    big = b"\n".join(json.dumps(envelope(i)).encode() for i in range(40))
    assert "larger than 1024" in send(small_api, big).json()["detail"]
    bomb = gzip.compress(b"\n" * 1_000_000)
    got = send(small_api, bomb)
    assert (got.status_code, got.json()["detail"]) == (
        413,
        "body decompresses to more than 4096 bytes",
    )
    many = gzip.compress(b"\n".join(json.dumps(envelope(i)).encode() for i in range(8)))
    assert "more than 5 records" in send(small_api, many).json()["detail"]


def test_damaged_gzip_is_422(api):
    got = send(api, gzip.compress(ENVELOPES)[:-20])
    assert got.status_code == 422 and "damaged gzip" in got.json()["detail"]


def test_agent_inventory_notes_last_seen_version_and_facts(api):
    line = (b'{"agent_id":"A1","event_type":"system","timestamp":"2024-05-01T13:00:00Z",'
            b'"payload":{"hostname":"db-01","os":"linux","cpu_count":8}}')  # fmt: skip
    send(api, line, **{"X-Kestrel-Agent-Version": "0.3.1"})
    agents = api.get("/api/v1/agents").json()
    assert [(a["agent_id"], a["host"], a["version"], a["facts"]) for a in agents] == [
        ("test-agent", "db-01", "0.3.1", {"os": "linux", "cpu_count": 8})]  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_never_give_a_server_error(api, body):
    got = send(api, body)
    assert got.status_code in (200, 413, 422), got.text


def test_a_refused_parse_leaves_the_parse_lock_free(small_api):
    """Bodies are parsed one at a time under a lock; a parse that raises (413, 422) must
    let it go, or every later request would hang on it."""
    from kestrel.api.routes import events

    many = gzip.compress(b"\n".join(json.dumps(envelope(i)).encode() for i in range(8)))
    assert send(small_api, many).status_code == 413  # raised inside the parse
    assert send(small_api, b"{not json\n").status_code == 422  # raised inside it too
    assert not events._PARSING.locked()
    good = send(small_api, json.dumps(envelope(1)).encode())
    assert good.status_code == 200 and good.json()["stored"] == 1
