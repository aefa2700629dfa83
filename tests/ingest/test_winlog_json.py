"""The winlog-json reader: NXLog / Logstash flat records, Winlogbeat and evtx_dump JSON, told
apart per record and mapped by the shared Windows normalizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kestrel.events import event_id
from kestrel.ingest import Source, ingest_paths
from kestrel.ingest.sniff import sniff
from kestrel.ingest.winlog_json import WinlogJsonReader

WINDOWS = Path(__file__).parents[1] / "fixtures" / "windows"


def source(name: str) -> Source:
    path = WINDOWS / name
    return Source(str(path), lambda: path.open("rb"))


def rows(name: str) -> list[dict[str, Any]]:
    return [r for c in WinlogJsonReader().read(source(name)) for r in c.batch.to_pylist()]


@pytest.mark.parametrize("name", ["nxlog.jsonl", "winlogbeat.jsonl", "evtx_dump.json"])
def test_every_shape_sniffs_as_winlog_json(name):
    assert sniff(source(name)) == "winlog-json"


def test_nxlog_sysmon_prefers_utctime_and_hostname():
    row = rows("nxlog.jsonl")[0]
    assert (row["source"], row["source_event"], row["class"]) == (
        "winlog-json",
        "Sysmon:1",
        "process",
    )
    # UtcTime (the event), not @timestamp (when the collector saw it)
    assert row["time"].isoformat() == "2024-03-01T10:00:01.120000+00:00"
    # Hostname is the event's host; "host" is the collector
    assert (row["host"], row["entity_id"]) == ("WKS01.corp.example", "wks01.corp.example")
    # User is Sysmon's field; AccountName / Domain are the Sysmon service's own account
    assert (row["user_domain"], row["user_name"]) == ("CORP", "alice")
    assert (row["process_pid"], row["parent_pid"]) == (4242, 1234)
    assert (row["process_name"], row["parent_name"]) == ("certutil.exe", "cmd.exe")
    assert (
        row["process_sha256"] == "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
    )
    assert row["event_id"] == event_id("winlog-json", row["raw"].encode())


def test_nxlog_security_network():
    row = rows("nxlog.jsonl")[1]
    assert (row["class"], row["activity"], row["source_event"]) == (
        "network",
        "allow",
        "Security:5156",
    )
    assert (row["protocol"], row["direction"]) == ("tcp", "outbound")
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]) == (
        "10.0.0.15",
        51000,
        "198.51.100.20",
        443,
    )
    assert (row["process_pid"], row["process_name"]) == (1044, "svchost.exe")
    assert row["time"].isoformat() == "2024-03-01T10:00:10+00:00"


def test_nxlog_powershell_user():
    row = rows("nxlog.jsonl")[2]
    assert (row["class"], row["activity"]) == ("script", "invoke")
    assert row["script_text"].startswith("CommandInvocation(Invoke-WebRequest)")
    assert (row["user_domain"], row["user_name"], row["user_id"]) == (
        "CORP",
        "alice",
        "S-1-5-21-1000-2000-3000-1105",
    )


def test_nxlog_zone_less_time_created_is_read_as_utc():
    row = rows("nxlog.jsonl")[3]
    assert (row["source_event"], row["class"], row["activity"]) == (
        "Security:4689",
        "process",
        "terminate",
    )
    assert row["channel"] == "security"  # as the source wrote it
    assert row["time"].isoformat() == "2024-03-01T10:05:00.250000+00:00"
    assert (row["process_pid"], row["process_name"]) == (0x12D8, "rundll32.exe")


def test_nxlog_rejects_with_positions():
    chunks = list(WinlogJsonReader().read(source("nxlog.jsonl")))
    assert sum(c.read for c in chunks) == 8
    rejected = sorted((r.position.line, r.reason.split(":")[0]) for c in chunks for r in c.rejected)
    assert rejected == [
        (6, "no usable time (None)"),
        (7, "malformed JSON"),
        (8, "not a JSON object"),
    ]


def test_winlogbeat_shape():
    sysmon, logon, script = rows("winlogbeat.jsonl")
    assert (sysmon["source_event"], sysmon["event_code"], sysmon["host"]) == (
        "Sysmon:1",
        1,
        "WKS02.corp.example",
    )
    assert (sysmon["process_name"], sysmon["parent_name"], sysmon["user_name"]) == (
        "mshta.exe",
        "WINWORD.EXE",
        "carol",
    )
    assert sysmon["process_sha256"] == "abcdef0123456789" * 4
    assert sysmon["time"].isoformat() == "2024-03-01T11:00:00+00:00"
    assert (logon["class"], logon["outcome"], logon["logon_type"]) == ("auth", "failure", 3)
    assert (logon["user_name"], logon["user_id"], logon["src_ip"], logon["src_port"]) == (
        "mallory",
        None,
        None,
        None,
    )
    assert (script["class"], script["user_id"]) == ("script", "S-1-5-21-1000-2000-3000-1108")


def test_evtx_dump_records_are_evtx_events():
    for row in rows("evtx_dump.json"):
        assert row["source"] == "evtx"
        assert row["event_id"] == event_id("evtx", row["raw"].encode())


def test_ingest_counts_and_idempotence(store):
    paths = [WINDOWS / "nxlog.jsonl", WINDOWS / "winlogbeat.jsonl", WINDOWS / "evtx_dump.json"]
    counts = ingest_paths(paths, store).by_format["winlog-json"]
    assert (counts.read, counts.stored, counts.duplicates, counts.rejected) == (27, 21, 1, 5)
    again = ingest_paths(paths, store).by_format["winlog-json"]
    assert (again.stored, again.duplicates) == (0, 22)
