"""Shared helpers for the respond tests: a finding, and an executor over recording
actions writing into the test's temporary folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kestrel.findings import Entity, Finding, Severity, Signal
from kestrel.respond import AuditLog, PlaybookExecutor, PolicyEngine, RunStore
from kestrel.respond.actions import recording_actions
from kestrel.respond.policy import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_finding(severity: Severity = Severity.HIGH, detector: str = "yara-process",
                 entity: str = "web-01", title: str = "bad binary") -> Finding:  # fmt: skip
    return Finding(detector=detector, entity=Entity("host", entity), first_seen=T0,
                   last_seen=T0, severity=severity, title=title, techniques=("T1059.004",),
                   signals=(Signal("yara:Kestrel_Test", 1.0),), evidence=("e1",))  # fmt: skip


def enforce_all() -> Policy:
    from kestrel.respond import ACTIONS

    return Policy(mode="enforce", allow={name: ["*"] for name in ACTIONS})


@pytest.fixture
def executor(tmp_path: Path) -> PlaybookExecutor:
    """Recording actions, enforce-everything policy, audit and runs under tmp_path."""
    return PlaybookExecutor(recording_actions(), AuditLog(tmp_path / "audit.jsonl"),
                            RunStore(tmp_path / "runs"), PolicyEngine(enforce_all()))  # fmt: skip
