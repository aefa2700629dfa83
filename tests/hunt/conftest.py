"""A small hand-made store for hunt tests: a process tree on two hosts, its connections,
files and users, and two cloud API calls. Each row says in ``source_event`` what it shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from sqlglot import exp

from kestrel.events import make_batch
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# host, class, pid, guid, name, cmdline, parent pid, parent guid, parent name, user, extra
_ROWS: list[dict[str, Any]] = [
    {"host": "h1", "class": "process", "process_pid": 100, "process_guid": "g-explorer",
     "process_name": "explorer.exe", "user_name": "alice", "parent_pid": 4,
     "parent_name": "wininit.exe"},
    {"host": "h1", "class": "process", "process_pid": 200, "process_guid": "g-cmd",
     "process_name": "cmd.exe", "process_cmdline": "cmd.exe /c whoami", "parent_pid": 100,
     "parent_guid": "g-explorer", "parent_name": "explorer.exe", "user_name": "alice"},
    {"host": "h1", "class": "process", "process_pid": 300, "process_guid": "g-whoami",
     "process_name": "whoami.exe", "process_cmdline": "whoami /all", "parent_pid": 200,
     "parent_guid": "g-cmd", "parent_name": "cmd.exe", "user_name": "alice"},
    {"host": "h1", "class": "process", "process_pid": 301, "process_guid": "g-ps",
     "process_name": "powershell.exe", "process_cmdline": "powershell -enc AAAA",
     "parent_pid": 200, "parent_guid": "g-cmd", "parent_name": "cmd.exe", "user_name": "alice"},
    {"host": "h1", "class": "network", "process_pid": 301, "process_guid": "g-ps",
     "process_name": "powershell.exe", "src_ip": "10.0.0.5", "src_port": 50000,
     "dst_ip": "203.0.113.7", "dst_port": 443, "protocol": "tcp", "user_name": "alice"},
    {"host": "h1", "class": "file", "activity": "create", "process_pid": 301,
     "process_guid": "g-ps", "process_name": "powershell.exe", "file_path": "C:\\t\\a.ps1",
     "file_name": "a.ps1", "user_name": "alice"},
    # host h2: no GUIDs, identity is host + pid + name
    {"host": "h2", "class": "process", "process_pid": 500, "process_name": "CMD.EXE",
     "process_cmdline": "cmd /c dir", "parent_pid": 50, "parent_name": "services.exe",
     "user_name": "bob"},
    {"host": "h2", "class": "process", "process_pid": 600, "process_name": "net.exe",
     "process_cmdline": "net user", "parent_pid": 500, "parent_name": "cmd.exe",
     "user_name": "bob"},
    {"host": "h2", "class": "network", "process_pid": 600, "process_name": "net.exe",
     "src_ip": "10.0.0.9", "src_port": 40000, "dst_ip": "10.0.0.1", "dst_port": 445,
     "protocol": "tcp", "user_name": "bob"},
    {"class": "api_activity", "cloud_principal": "arn:aws:iam::1:user/eve",
     "cloud_operation": "ListBuckets", "cloud_service": "s3", "src_ip": "198.51.100.2"},
    {"class": "api_activity", "cloud_principal": "arn:aws:iam::1:user/eve",
     "cloud_operation": "GetObject", "cloud_service": "s3", "src_ip": "198.51.100.2",
     "cloud_error_code": "AccessDenied"},
]  # fmt: skip


def hunt_batch() -> pa.Table:
    """The rows above as an event batch, one minute apart."""
    for row in _ROWS:  # Sysmon process creation, so Sigma's logsource dispatch finds them
        if row["class"] == "process":
            row.update(channel="Microsoft-Windows-Sysmon/Operational", event_code=1)
    names = sorted({k for row in _ROWS for k in row})
    columns: dict[str, Any] = {n: [row.get(n) for row in _ROWS] for n in names}
    n = len(_ROWS)
    columns["event_id"] = [f"e{i:02d}" for i in range(n)]
    times = [T0.replace(minute=i) for i in range(n)]
    columns["time"] = pa.array(times, pa.timestamp("us", "UTC"))
    columns["source"] = ["test"] * n
    columns["raw"] = [json.dumps(row) for row in _ROWS]
    return make_batch(columns, n)


@pytest.fixture(autouse=True)
def light_sql_is_sqlglot_duckdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every query a hunt test writes for DuckDB through `kestrel.hunt.duckdb_sql`'s light
    generator is also written by sqlglot's DuckDB dialect, and the two texts must be equal;
    the texts written the light way are yielded (a test can check that the path was taken)."""
    from kestrel.hunt import duckdb_sql

    light = duckdb_sql._DIALECT
    written: list[str] = []

    class Checked:
        def generate(self, query: exp.Expr, copy: bool = True) -> str:
            ours = light.generate(query, copy=True)
            assert ours == query.sql(dialect="duckdb"), query.sql(dialect="duckdb")
            written.append(ours)
            return ours

    monkeypatch.setattr(duckdb_sql, "_DIALECT", Checked())
    yield written


@pytest.fixture
def hunt_store() -> Iterator[DuckDBStore]:
    store = DuckDBStore(":memory:")
    store.append(hunt_batch())
    yield store
    store.close()


@pytest.fixture
def session(hunt_store: DuckDBStore) -> Iterator[Session]:
    with Session(hunt_store, now=T0.replace(hour=13)) as s:
        yield s
