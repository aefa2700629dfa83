"""`kestrel shell`: completion, the read-run loop, and the command over a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kestrel.hunt.display import Display, TableDisplay
from kestrel.hunt.session import Session
from kestrel.hunt.shell import Shell, candidates


def test_completes_keywords_types_variables_and_attributes(session: Session) -> None:
    session.execute("procs = GET process")
    assert "GET" in candidates(session, "p = ge")
    assert "process" in candidates(session, "p = GET proc")
    assert candidates(session, "DISP pro") == ["process", "procs"]
    assert "procs.command_line" in candidates(session, "q = GET process WHERE pid IN procs.com")
    assert "parent_name" in candidates(session, "DISP procs ATTR parent_n")


def test_loop_runs_lines_reports_errors_and_stops_at_exit(session: Session) -> None:
    shown: list[Display] = []
    errors: list[str] = []
    lines = ["p = GET process \\", "WHERE pid = 500", "DISP p ATTR nmae", "DISP p ATTR pid",
             "exit", "DISP p"]  # fmt: skip
    Shell(session, shown.extend, errors.append).loop(lines)
    assert len(shown) == 1 and isinstance(shown[0], TableDisplay)
    assert shown[0].table.column("pid").to_pylist() == [500]
    assert len(errors) == 1 and "did you mean name?" in errors[0]


def test_kestrel_shell_over_a_pipe_keeps_history(tmp_path: Path) -> None:
    env = {**os.environ, "KESTREL_HOME": str(tmp_path)}
    text = "n = NEW process ['cmd.exe']\nDISP n ATTR name\nDISP m\n"
    cmd = [sys.executable, "-m", "kestrel", "shell", "--db", ":memory:"]
    out = subprocess.run(cmd, input=text, capture_output=True, text=True, env=env, timeout=60,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cmd.exe" in out.stdout and "no variable 'm'" in out.stdout
    assert "DISP n ATTR name" in (tmp_path / "hunt_history").read_text()
