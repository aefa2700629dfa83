"""`kestrel scan` as a user runs it: hits printed, exit code 1 on any hit, 0 when clean."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "enrich" / "rules"


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_scan_hits_yara_and_ioc_with_offsets_and_exit_1(tmp_path: Path):
    target = tmp_path / "samples"
    target.mkdir()
    (target / "dropper.bin").write_bytes(b"MZ....KESTREL-MALWARE-MARKER....")
    known = b"known bad bytes"
    (target / "other.dat").write_bytes(known)
    (target / "clean.txt").write_bytes(b"hello")
    feed = tmp_path / "iocs.txt"
    feed.write_text(f"{hashlib.sha256(known).hexdigest()};test sample\n")
    out = kestrel("scan", str(target), "--rules", str(RULES), "--iocs", str(feed), "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["scanned"] == 3
    got = {(Path(h["file"]).name, h["kind"], h["match"]) for h in report["hits"]}
    assert got == {("dropper.bin", "yara", "strings.yar:Kestrel_Test_Marker"),
                   ("other.dat", "ioc", hashlib.sha256(known).hexdigest())}  # fmt: skip
    yara_hit = next(h for h in report["hits"] if h["kind"] == "yara")
    assert "$marker@6=" in yara_hit["detail"]
    assert "broken.yar" in out.stderr  # the bad rule file is reported


def test_scan_clean_exits_0_and_table_output(tmp_path: Path):
    (tmp_path / "clean.txt").write_bytes(b"hello")
    out = kestrel("scan", str(tmp_path), "--rules", str(RULES / "strings.yar"))
    assert out.returncode == 0, out.stderr
    assert "1 files scanned, 0 hits" in out.stdout


def test_scan_without_rules_or_iocs_is_an_error(tmp_path: Path):
    out = kestrel("scan", str(tmp_path))
    assert out.returncode == 2 and "--rules" in out.stderr
