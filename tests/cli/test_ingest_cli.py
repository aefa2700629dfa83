"""The `kestrel` command as a user runs it (a subprocess: real exit codes, real output)."""

import json
import subprocess
import sys
from pathlib import Path


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_version():
    out = kestrel("--version")
    assert out.returncode == 0 and out.stdout.startswith("kestrel ")


def test_ingest_then_stats_json_and_reingest_changes_nothing(fixtures: Path, tmp_path: Path):
    db = str(tmp_path / "k.duckdb")
    first = kestrel("ingest", "--db", db, "--json", str(fixtures / "cloudtrail"))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["read"], report["stored"], report["duplicates"], report["rejected"]) == (
        3, 3, 0, 0)  # fmt: skip
    stats = json.loads(kestrel("stats", "--db", db, "--json").stdout)
    assert stats == {"total": 3, "by_source": {"cloudtrail": 3},
                     "by_class": {"api_activity": 2, "auth": 1}, "rejected": 0}  # fmt: skip
    again = json.loads(kestrel("ingest", "--db", db, "--json", str(fixtures / "cloudtrail")).stdout)
    assert (again["stored"], again["duplicates"]) == (0, 3)
    assert json.loads(kestrel("stats", "--db", db, "--json").stdout) == stats


def test_table_summary_and_rejected_listing(tmp_path: Path):
    bad = tmp_path / "trail.jsonl"
    bad.write_text(
        '{"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", '
        '"eventTime": "2024-01-01T00:00:00Z"}\n{broken\n'
    )
    db = str(tmp_path / "k.duckdb")
    out = kestrel("ingest", "--db", db, str(bad))
    assert out.returncode == 0, out.stderr
    assert "cloudtrail" in out.stdout and "rejected" in out.stdout
    listing = kestrel("rejected", "--db", db)
    assert "line 2" in listing.stdout and "malformed JSON" in listing.stdout


def test_missing_path_is_one_line_error_not_traceback(tmp_path: Path):
    out = kestrel("ingest", "--db", str(tmp_path / "k.duckdb"), str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "no such file" in out.stderr and "Traceback" not in out.stderr


def test_unknown_format_name_is_reported(fixtures: Path, tmp_path: Path):
    out = kestrel("ingest", "--db", str(tmp_path / "k.duckdb"), "--format", "pcap",
                  str(fixtures / "cloudtrail"))  # fmt: skip
    assert out.returncode == 2
    assert "unknown format 'pcap'" in out.stderr and "cloudtrail" in out.stderr
