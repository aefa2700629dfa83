"""`kestrel hunt` as a user runs it: a huntbook file or -e text, table or JSON output."""

import json
import subprocess
import sys
from pathlib import Path


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_hunt_e_json(fixtures: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    assert kestrel("ingest", "--db", db, str(fixtures / "cloudtrail")).returncode == 0
    out = kestrel("hunt", "--db", db, "-f", "json", "-e",
                  "c = GET cloud-api-call\nDISP c ATTR operation LIMIT 1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown[0]["columns"] == ["operation"] and len(shown[0]["rows"]) == 1


def test_huntbook_file_table_output(tmp_path: Path) -> None:
    book = tmp_path / "a.hf"
    book.write_text("# a huntbook\nn = NEW process ['cmd.exe', 'x.exe']\nDISP n ATTR name\n")
    out = kestrel("hunt", "--db", str(tmp_path / "k.duckdb"), str(book))
    assert out.returncode == 0, out.stderr
    assert "cmd.exe" in out.stdout and "x.exe" in out.stdout


def test_syntax_error_is_one_line_with_position(tmp_path: Path) -> None:
    out = kestrel("hunt", "--db", str(tmp_path / "k.duckdb"), "-e", "p = GTE process")
    assert out.returncode == 2
    assert "line 1, column" in out.stderr and "did you mean GET?" in out.stderr
    assert "Traceback" not in out.stderr
