"""Endpoint actions on things the test made: a process it started, files in its own
temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from kestrel.errors import ActionError
from kestrel.respond import Quarantine
from kestrel.respond.actions.endpoint import (
    KillParams,
    KillProcess,
    PathParams,
    QuarantineFile,
    RestoreFile,
    RestoreParams,
)


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_kill_process_ends_the_process_it_was_given():
    proc = _sleeper()
    try:
        name = psutil.Process(proc.pid).name()
        result = KillProcess().run(KillParams(pid=proc.pid, name=name, timeout=5))
        proc.wait(timeout=5)
        assert result.ok and result.data["how"] == "terminated"
        assert not psutil.pid_exists(proc.pid)
    finally:
        proc.kill()


def test_kill_process_refuses_a_pid_with_another_name():
    proc = _sleeper()
    try:
        with pytest.raises(ActionError, match="not 'sshd'"):
            KillProcess().run(KillParams(pid=proc.pid, name="sshd"))
        assert proc.poll() is None  # still running
    finally:
        proc.kill()
        proc.wait()


def test_kill_process_refuses_the_responder_and_missing_pids():
    with pytest.raises(ActionError, match="the responder"):
        KillProcess().run(KillParams(pid=os.getpid()))
    proc = _sleeper()
    proc.kill()
    proc.wait()
    with pytest.raises(ActionError, match="no process"):
        KillProcess().run(KillParams(pid=proc.pid, name=None))


def test_quarantine_moves_with_metadata_and_restores(tmp_path: Path):
    victim = tmp_path / "drop" / "evil.bin"
    victim.parent.mkdir()
    victim.write_bytes(b"MZ not really")
    victim.chmod(0o751)
    os.utime(victim, (1_700_000_000, 1_700_000_000))
    q = Quarantine(tmp_path / "quarantine")
    result = QuarantineFile(q).run(PathParams(path=str(victim), reason="yara"))
    qid = result.data["quarantine_id"]
    assert not victim.exists()
    [item] = q.list()
    assert (item.quarantine_id, item.original_path, item.mode, item.reason) == (
        qid, str(victim), 0o751, "yara")  # fmt: skip
    stored = tmp_path / "quarantine" / qid / "file"
    assert stored.stat().st_mode & 0o777 == 0o400
    RestoreFile(q).run(RestoreParams(quarantine_id=qid))
    assert victim.read_bytes() == b"MZ not really"
    assert victim.stat().st_mode & 0o777 == 0o751 and victim.stat().st_mtime == 1_700_000_000
    assert q.list() == []


def test_restore_refuses_to_overwrite_and_bad_ids(tmp_path: Path):
    victim = tmp_path / "f"
    victim.write_text("x")
    q = Quarantine(tmp_path / "q")
    item = q.put(victim)
    victim.write_text("new file in the way")
    with pytest.raises(ActionError, match="exists"):
        q.restore(item.quarantine_id)
    with pytest.raises(ActionError, match="not a quarantine id"):
        q.restore("../etc")
    with pytest.raises(ActionError, match="not a regular file"):
        q.put(tmp_path)
