"""The shared Windows normalizer: one test per mapping row that matters, on hand-made records
in the ``evtx_dump`` shape (tests/fixtures/windows/evtx_dump.json), plus the mapping tables'
own consistency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kestrel.events import EVENT_CLASSES, SCHEMA, event_id
from kestrel.events.schema import COLUMN_NAMES
from kestrel.ingest import Chunk, Source
from kestrel.ingest.windows import evtx_canonical
from kestrel.ingest.windows_plan import LOGS, integer, kind_of, plan_for
from kestrel.ingest.winlog_json import WinlogJsonReader

DERIVED = {"@user", "@process_hashes", "@file_hashes", "@initiated", "@integrity_sid"}


def read(path: Path) -> list[Chunk]:
    return list(WinlogJsonReader().read(Source(str(path), lambda: path.open("rb"))))


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    return read(Path(__file__).parents[1] / "fixtures" / "windows" / "evtx_dump.json")


@pytest.fixture(scope="module")
def by_record(chunks: list[Chunk]) -> dict[int, dict[str, Any]]:
    """Rows keyed by the record's EventRecordID."""
    out = {}
    for chunk in chunks:
        for row in chunk.batch.to_pylist():
            out[json.loads(row["raw"])["Event"]["System"]["EventRecordID"]] = row
    return out


def test_batch_conforms_and_counts(chunks):
    assert all(c.batch.schema == SCHEMA for c in chunks)
    assert sum(c.read for c in chunks) == 16
    assert sum(c.batch.num_rows for c in chunks) == 14


def test_sysmon_process_create(by_record):
    row = by_record[101]
    assert (row["class"], row["activity"], row["source"]) == ("process", "create", "evtx")
    assert (row["source_event"], row["event_code"]) == ("Sysmon:1", 1)
    assert row["channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert row["provider"] == "Microsoft-Windows-Sysmon"
    assert (row["host"], row["entity_type"], row["entity_id"]) == (
        "WKS01.corp.example",
        "host",
        "wks01.corp.example",
    )
    assert row["process_path"] == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert row["process_name"] == "powershell.exe"
    assert (row["parent_path"], row["parent_name"]) == ("C:\\Windows\\explorer.exe", "explorer.exe")
    assert row["process_cmdline"] == "powershell.exe -NoProfile -EncodedCommand SQBFAFgA"
    assert row["parent_cmdline"] == "C:\\Windows\\Explorer.EXE"
    assert (row["process_pid"], row["parent_pid"]) == (4242, 1234)
    assert row["process_guid"] == "{AAAA0001-0000-0000-0000-000000000101}"
    assert (row["user_domain"], row["user_name"]) == ("CORP", "alice")
    assert row["process_integrity"] == "High"
    assert row["process_md5"] == "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert row["process_sha1"] == "5f1d8a3c2b7e6d4f9a0b1c2d3e4f5a6b7c8d9e0f"
    assert (
        row["process_sha256"] == "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
    )
    assert row["time"].isoformat() == "2024-03-01T10:00:01.123456+00:00"


def test_ids_hash_the_raw_record(by_record):
    for row in by_record.values():
        assert row["event_id"] == event_id("evtx", row["raw"].encode())


def test_sysmon_network(by_record):
    row = by_record[102]
    assert (row["class"], row["activity"]) == ("network", "connect")
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]) == (
        "10.0.0.15",
        50123,
        "203.0.113.7",
        443,
    )
    assert (row["protocol"], row["direction"], row["dst_hostname"]) == (
        "tcp",
        "outbound",
        "cdn.example.net",
    )


def test_sysmon_registry_activity_from_event_type(by_record):
    row = by_record[103]
    assert (row["class"], row["activity"]) == ("registry", "delete_key")
    assert row["registry_key"].endswith("Real-Time Protection")
    assert row["process_name"] == "reg.exe"


def test_sysmon_image_load_hashes_the_module(by_record):
    row = by_record[104]
    assert (row["class"], row["activity"]) == ("module", "load")
    assert (row["file_name"], row["file_md5"]) == (
        "payload.dll",
        "ffeeddccbbaa99887766554433221100",
    )
    assert row["process_md5"] is None


def test_sysmon_process_access(by_record):
    row = by_record[105]
    assert (row["class"], row["activity"]) == ("process_access", "open")
    assert (row["process_name"], row["process_pid"]) == ("rundll32.exe", 4242)
    assert (row["target_path"], row["target_pid"]) == ("C:\\Windows\\system32\\lsass.exe", 640)
    assert row["process_guid"] == "{AAAA0001-0000-0000-0000-000000000101}"
    assert row["user_name"] == "alice"


def test_sysmon_dns(by_record):
    row = by_record[106]
    assert (row["class"], row["dns_query"], row["dns_answer"]) == (
        "dns",
        "cdn.example.net",
        "::ffff:203.0.113.7;",
    )


def test_security_process_create_hex_pids_and_subject(by_record):
    row = by_record[201]
    assert (row["class"], row["activity"], row["source_event"]) == (
        "process",
        "create",
        "Security:4688",
    )
    assert (row["process_pid"], row["parent_pid"]) == (0x1A4, 0x2F0)
    assert (row["process_name"], row["parent_name"]) == ("whoami.exe", "cmd.exe")
    assert row["process_cmdline"] == "whoami /all"
    # the target user is "-" / the null SID: the subject is the acting user
    assert (row["user_name"], row["user_domain"]) == ("alice", "CORP")
    assert row["user_id"] == "S-1-5-21-1000-2000-3000-1105"
    assert row["process_integrity"] == "High"


def test_security_logon(by_record):
    row = by_record[202]
    assert (row["class"], row["activity"], row["outcome"]) == ("auth", "logon", "success")
    assert (row["user_name"], row["user_domain"]) == ("bob", "CORP")
    assert (row["logon_type"], row["src_ip"], row["src_port"]) == (3, "10.0.0.99", 50411)
    assert (row["process_path"], row["process_name"]) == ("-", None)  # Security's "no value"


def test_security_object_access_on_a_key_is_registry(by_record):
    row = by_record[203]
    assert (row["class"], row["activity"]) == ("registry", "access")
    assert row["registry_key"] == "\\REGISTRY\\MACHINE\\SAM\\SAM\\Domains\\Account"
    assert row["file_path"] is None
    assert row["process_pid"] == 0x1A4


def test_log_cleared_reads_user_data(by_record):
    row = by_record[204]
    assert (row["class"], row["activity"], row["provider"]) == (
        "system",
        "log_clear",
        "Microsoft-Windows-Eventlog",
    )
    assert row["user_name"] == "alice"


def test_powershell_script_block(by_record):
    row = by_record[301]
    assert (row["class"], row["activity"], row["source_event"]) == (
        "script",
        "execute",
        "PowerShell:4104",
    )
    assert row["script_text"].startswith("IEX (New-Object Net.WebClient)")
    assert row["user_id"] == "S-1-5-21-1000-2000-3000-1105"  # the System user


def test_classic_powershell_unnamed_data_and_qualified_event_id(by_record):
    row = by_record[302]
    assert (row["class"], row["source_event"], row["event_code"]) == (
        "script",
        "Windows PowerShell:800",
        800,
    )
    assert row["script_text"].splitlines()[0] == "Get-Process | Out-String"


def test_unknown_event_is_kept_as_other(by_record):
    row = by_record[401]
    assert (row["class"], row["activity"], row["source_event"]) == ("other", None, "Contoso:9999")
    assert json.loads(row["raw"])["Event"]["EventData"]["Detail"].startswith("something")
    assert by_record[402]["source_event"] == "System:7045"
    assert by_record[402]["class"] == "other"


def test_records_without_event_id_or_time_are_rejected(chunks):
    rejected = [r for c in chunks for r in c.rejected]
    reasons = sorted(r.reason for r in rejected)
    assert reasons == ["no usable EventID (None)", "no usable time (None)"]
    assert sorted(r.position.record for r in rejected) == [15, 16]
    assert all(r.position.line for r in rejected)


# -- the canonical form of EVTX records ------------------------------------------------------


def test_evtx_canonical_trims_trailing_spaces_of_strings_only():
    raw = b'{"Event":{"A":"x  ","B":"say \\" ","C":"c:\\\\ ","D":"a b"}}'
    assert evtx_canonical(raw) == b'{"Event":{"A":"x","B":"say \\"","C":"c:\\\\","D":"a b"}}'
    assert evtx_canonical(evtx_canonical(raw)) == evtx_canonical(raw)
    json.loads(evtx_canonical(raw))  # still valid JSON


# -- helpers and tables ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0x1a4", 420), ("0X10", 16), (" 12 ", 12), (7, 7), ("abc", None), ("", None),
     (True, None), (2**70, None), ("-", None), (None, None)],
)  # fmt: skip
def test_integer(value, expected):
    assert integer(value) == expected


@pytest.mark.parametrize(
    ("channel", "provider", "expected"),
    [
        ("Microsoft-Windows-Sysmon/Operational", None, ("sysmon", "Sysmon")),
        ("security", "Microsoft-Windows-Security-Auditing", ("security", "Security")),
        (None, "Microsoft-Windows-Sysmon", ("sysmon", "Sysmon")),
        ("Windows PowerShell", "PowerShell", ("powershell", "Windows PowerShell")),
        ("Microsoft-Windows-WMI-Activity/Operational", None, (None, "WMI-Activity")),
        (None, "Microsoft-Windows-RPC", (None, "RPC")),
        (None, None, (None, "Windows")),
    ],
)
def test_kind_of(channel, provider, expected):
    assert kind_of(channel, provider) == expected


def test_mapping_tables_name_real_classes_and_columns():
    for name, log in LOGS.items():
        for code, (cls, _) in log.events.items():
            assert cls in EVENT_CLASSES, (name, code)
        for key, fields in log.fields.items():
            assert key in EVENT_CLASSES or key in log.events, (name, key)
            for target in fields.values():
                assert target in COLUMN_NAMES or target in DERIVED, (name, key, target)
        for code, (_, values) in log.refine.items():
            assert all(cls in EVENT_CLASSES for cls, _ in values.values()), (name, code)


def test_unknown_code_of_a_known_log_keeps_the_logs_common_fields():
    plan = plan_for("security", 5447)
    assert (plan.cls, plan.activity) == ("other", None)
    assert "SubjectUserName" in {field for field, _, _ in plan.copies}
