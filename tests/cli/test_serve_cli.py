"""`kestrel token create|list|revoke` as a user runs them; the secret is printed once and
stored only as a hash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kestrel.api import verify_token
from kestrel.store import DuckDBStore
from kestrel.store.management import ManagementStore


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_token_create_list_revoke(tmp_path: Path):
    db = str(tmp_path / "k.duckdb")
    made = kestrel("token", "create", "--role", "analyst", "--name", "alice", "--db", db)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("kst_") and "shown once" in made.stderr
    listed = kestrel("token", "list", "--db", db)
    assert "alice" in listed.stdout and token.split("_", 2)[2] not in listed.stdout
    store = DuckDBStore(db)
    try:
        principal = verify_token(ManagementStore(store), token)
    finally:
        store.close()
    assert principal is not None and principal.role == "analyst"
    assert kestrel("token", "revoke", principal.token_id, "--db", db).returncode == 0


def test_unknown_role_is_one_line_and_exit_2(tmp_path: Path):
    out = kestrel("token", "create", "--role", "root", "--name", "x", "--db", str(tmp_path / "k"))
    assert out.returncode == 2 and "unknown role 'root'" in out.stderr
