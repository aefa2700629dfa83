"""Sigma correlation rules: event_count, value_count and temporal over the base rules'
matches, per group-by field, in windows of the rule's timespan; unsupported types listed."""

from __future__ import annotations

from pathlib import Path

from tests.detect.sigma.conftest import batch_of, sysmon

from kestrel.detect.sigma import SigmaDetector

_BASE = """title: Whoami
id: 00000000-0000-0000-0000-000000000001
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        CommandLine|contains: whoami
    condition: sel
---
title: Net user
id: 00000000-0000-0000-0000-000000000002
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        CommandLine|contains: 'net user'
    condition: sel
---
"""


def _correlation(body: str) -> str:
    return (
        "title: Recon burst\nid: 00000000-0000-0000-0000-0000000000c1\nlevel: high\n"
        "tags:\n    - attack.t1033\ncorrelation:\n" + body
    )


def _findings(tmp_path: Path, body: str, events: list[dict[str, object]]) -> list[str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(_BASE + _correlation(body), encoding="utf-8")
    detector = SigmaDetector([str(rules)])
    found = detector.detect(batch_of(events))
    assert not detector.issues, detector.issues
    return sorted(f"{f.title}:{len(f.evidence)}" for f in found if f.title == "Recon burst")


def _proc(record: int, user: str, cmd: str) -> dict[str, object]:
    return sysmon(1, record, CommandLine=cmd, User=user, Image="C:\\Windows\\System32\\x.exe")


def test_event_count_per_group_within_the_timespan(tmp_path: Path) -> None:
    body = (
        "    type: event_count\n    rules:\n        - 00000000-0000-0000-0000-000000000001\n"
        "    group-by:\n        - User\n    timespan: 10s\n    condition:\n        gte: 3\n"
    )
    a = [_proc(1, "a", "whoami"), _proc(2, "a", "whoami /all"), _proc(3, "a", "whoami")]
    b = [_proc(4, "b", "whoami"), _proc(5, "b", "whoami")]  # too few
    c = [_proc(10, "c", "whoami"), _proc(30, "c", "whoami"), _proc(50, "c", "whoami")]  # too slow
    events = a + b + c
    assert _findings(tmp_path, body, events) == ["Recon burst:3"]


def test_value_count_counts_distinct_values(tmp_path: Path) -> None:
    body = (
        "    type: value_count\n    rules:\n        - 00000000-0000-0000-0000-000000000001\n"
        "    group-by:\n        - User\n    timespan: 1m\n"
        "    condition:\n        gte: 2\n        field: CommandLine\n"
    )
    events = [_proc(1, "a", "whoami"), _proc(2, "a", "whoami"), _proc(3, "b", "whoami"),
              _proc(4, "b", "whoami /priv")]  # fmt: skip
    assert _findings(tmp_path, body, events) == ["Recon burst:2"]


def test_temporal_needs_every_base_rule_in_the_window(tmp_path: Path) -> None:
    body = (
        "    type: temporal\n    rules:\n        - 00000000-0000-0000-0000-000000000001\n"
        "        - 00000000-0000-0000-0000-000000000002\n"
        "    group-by:\n        - User\n    timespan: 5s\n"
    )
    events = [_proc(1, "a", "whoami"), _proc(3, "a", "net user x"),
              _proc(10, "b", "whoami"), _proc(40, "b", "net user y")]  # fmt: skip
    assert _findings(tmp_path, body, events) == ["Recon burst:2"]


def test_unsupported_correlation_is_an_issue(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    body = (
        "    type: temporal_ordered\n    rules:\n        - 00000000-0000-0000-0000-000000000001\n"
        "        - 00000000-0000-0000-0000-000000000002\n    timespan: 5s\n"
    )
    rules.write_text(_BASE + _correlation(body), encoding="utf-8")
    detector = SigmaDetector([str(rules)])
    assert detector.detect(batch_of([_proc(1, "a", "whoami")]))
    assert [i.rule_id for i in detector.issues] == ["00000000-0000-0000-0000-0000000000c1"]
    assert "temporal_ordered" in detector.issues[0].reason
