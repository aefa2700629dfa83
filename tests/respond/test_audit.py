"""The audit log's hash chain: every kind of tampering is found, at the right line."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kestrel.respond import AuditLog


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append("step", "tester", {"i": i, "path": Path("/tmp/x")}, "r-000000000001")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def test_intact_log_verifies(tmp_path: Path):
    report = _log(tmp_path).verify()
    assert (report.ok, report.records, len(report.head)) == (True, 5, 64)


def _edit(lines: list[str]) -> list[str]:
    rec = json.loads(lines[2])
    rec["data"]["i"] = 99
    return [*lines[:2], json.dumps(rec, sort_keys=True, separators=(",", ":")), *lines[3:]]


@pytest.mark.parametrize(
    ("tamper", "line", "problem"),
    [
        (_edit, 3, "edited"),
        (lambda ls: ls[:2] + ls[3:], 3, "sequence"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "sequence"),
        (lambda ls: [*ls[:2], ls[1], *ls[2:]], 3, "sequence"),
        (lambda ls: [*ls[:4], "{not json"], 5, "not JSON"),
    ],
    ids=["edit", "delete", "reorder", "duplicate", "garbage"],
)
def test_tampering_is_found(tmp_path: Path, tamper, line: int, problem: str):
    log = _log(tmp_path)
    _write(log, tamper(_lines(log)))
    report = log.verify()
    assert not report.ok and report.line == line and problem in report.problem


def test_rehashing_one_record_breaks_the_next_link(tmp_path: Path):
    from kestrel.respond.audit import chain_hash

    log = _log(tmp_path)
    lines = _lines(log)
    rec = json.loads(lines[1])
    rec["actor"] = "mallory"
    rec["hash"] = chain_hash({k: v for k, v in rec.items() if k != "hash"})
    lines[1] = json.dumps(rec)
    _write(log, lines)
    report = log.verify()
    assert not report.ok and report.line == 3 and "link broken" in report.problem


def test_truncation_shows_as_a_different_head(tmp_path: Path):
    log = _log(tmp_path)
    head = log.verify().head
    _write(log, _lines(log)[:-1])
    report = log.verify()
    assert report.ok and report.head != head  # `kestrel audit verify --head` catches it


def test_concurrent_appends_keep_one_chain(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.jsonl", _fsync=False)

    def work(k: int) -> None:
        for i in range(25):
            AuditLog(log.path, _fsync=False).append("step", f"t{k}", {"i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.records == 100
