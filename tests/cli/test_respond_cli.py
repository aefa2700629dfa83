"""`kestrel playbook validate|test|run`, `kestrel approve`, `kestrel audit verify` and
`kestrel quarantine restore` as a user runs them (subprocesses, real exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FINDING = {"detector": "yara-process", "entity": {"type": "host", "id": "web-01"},
           "severity": "high", "title": "YARA hit", "first_seen": "2026-01-01T00:00:00+00:00",
           "signals": [{"name": "yara:Kestrel_Test", "value": 1}]}  # fmt: skip


def kestrel(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KESTREL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)  # fmt: skip


def test_validate_reports_each_bad_file_with_its_field(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ntrigger: {}\nsteps: [{action: rm_rf}]\n")
    out = kestrel(tmp_path, "playbook", "validate", str(ROOT / "playbooks"), str(bad))
    assert out.returncode == 2
    assert "ok " in out.stdout and "malware-process" in out.stdout
    assert "steps.0.action: Value error, unknown action 'rm_rf'" in out.stderr


def test_run_with_approval_then_audit_verify_and_restore(tmp_path: Path):
    victim = tmp_path / "drop" / "evil.sh"
    victim.parent.mkdir()
    victim.write_text("#!/bin/sh\n")
    playbook = tmp_path / "q.yml"
    playbook.write_text(
        "name: q\ntrigger: {detector: yara-process}\nrequires_approval: true\n"
        "steps: [{action: quarantine_file, params: {path: '{{ event.path }}'}}]\n"
    )
    policy = tmp_path / "policy.yml"
    policy.write_text(f"mode: enforce\nallow: {{quarantine_file: ['{tmp_path}/*']}}\n")
    (tmp_path / "f.json").write_text(json.dumps(FINDING))
    (tmp_path / "e.json").write_text(json.dumps({"path": str(victim)}))
    args = ["--finding", str(tmp_path / "f.json"), "--event", str(tmp_path / "e.json")]
    run = kestrel(tmp_path, "playbook", "run", str(playbook), *args, "--policy", str(policy))
    assert run.returncode == 0, run.stderr
    assert "pending_approval" in run.stdout and victim.exists()
    run_id = run.stdout.split("run ", 1)[1].split()[0]
    done = kestrel(tmp_path, "approve", run_id, "--by", "alice", "--policy", str(policy))
    assert done.returncode == 0 and "completed" in done.stdout, done.stdout + done.stderr
    assert not victim.exists()
    verify = kestrel(tmp_path, "audit", "verify")
    assert verify.returncode == 0 and "ok" in verify.stdout
    [qid] = [p.name for p in (tmp_path / "quarantine").iterdir()]
    assert kestrel(tmp_path, "quarantine", "restore", qid).returncode == 0
    assert victim.read_text() == "#!/bin/sh\n"
    log = tmp_path / "audit.jsonl"
    log.write_text(log.read_text().replace('"alice"', '"mallory"'))
    broken = kestrel(tmp_path, "audit", "verify")
    assert broken.returncode == 1 and "line" in broken.stderr
