"""The response audit log: append-only JSON Lines, each record chained to the one before by
SHA-256, so an edited, inserted, reordered or deleted record breaks the chain and
`AuditLog.verify` (``kestrel audit verify``) says at which line.

Every decision lands here: the playbook that matched, each step's policy verdict and why,
who approved, what the action did or why it failed. Appends take an exclusive file lock,
so the CLI, the pipeline and an approval in another process can share one log.

The chain proves the records it holds are the ones written, in order. Cutting records off
the *end* leaves a valid shorter chain; to detect that, keep the head hash
(`VerifyReport.head`) elsewhere and compare (``kestrel audit verify --head``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
_FIELDS = ("seq", "time", "actor", "event", "run_id", "data", "prev")


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, non-JSON values as strings."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical record (which holds the previous record's hash)."""
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of checking a log: ``ok``, how many records, the head hash, and for a
    broken log the 1-based line and what is wrong there."""

    ok: bool
    records: int
    head: str
    line: int = 0
    problem: str = ""


@dataclass(slots=True)
class AuditLog:
    """An append-only, hash-chained log in one file."""

    path: Path
    clock: Callable[[], float] = time.time
    _fsync: bool = field(default=True)

    def append(self, event: str, actor: str, data: dict[str, Any],
               run_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Write one record after the current head and return it (with its hash)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            last = _last_record(fh)
            body = {"seq": last["seq"] + 1 if last else 1, "time": self.clock(), "actor": actor,
                    "event": event, "run_id": run_id, "data": data,
                    "prev": last["hash"] if last else GENESIS}  # fmt: skip
            record: dict[str, Any] = json.loads(canonical(body))  # as stored: defaults applied
            record["hash"] = chain_hash(record)
            fh.write(canonical(record) + b"\n")
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (no checking: use `verify` for that)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> VerifyReport:
        """Recompute the chain; the first broken line is reported."""
        prev, count = GENESIS, 0
        if not self.path.exists():
            return VerifyReport(True, 0, GENESIS)
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                problem = _check(line, count + 1, prev)
                if problem:
                    return VerifyReport(False, count, prev, number, problem)
                prev, count = json.loads(line)["hash"], count + 1
        return VerifyReport(True, count, prev)


def _check(line: bytes, seq: int, prev: str) -> str:
    """What is wrong with one line, or "" when it continues the chain."""
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(record, dict) or set(record) != {*_FIELDS, "hash"}:
        return "not an audit record (fields missing or added)"
    if record["seq"] != seq:
        return f"sequence {record['seq']} where {seq} was expected (a record removed or moved)"
    if record["prev"] != prev:
        return "previous-hash link broken (a record before it changed, removed or moved)"
    body = {k: record[k] for k in _FIELDS}
    if chain_hash(body) != record["hash"]:
        return "hash does not match the record (the record was edited)"
    return ""


def _last_record(fh: Any, block: int = 64 * 1024) -> dict[str, Any] | None:
    """The last record of an open log, read backwards from the end."""
    end = fh.seek(0, os.SEEK_END)
    tail, pos = b"", end
    while pos > 0:
        pos = max(0, pos - block)
        fh.seek(pos)
        tail = fh.read(end - pos)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            last = lines[-1].strip()
            return json.loads(last) if last else None
    return None
