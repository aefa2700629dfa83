"""The two evaluation paths agree: Polars plans and ``extract_many`` (what rules with many
candidates get) against Python predicates and the automaton kept between batches (what rules
with few candidates get, `kestrel.detect.sigma.pyeval`). The semantics tests run on both
paths already (the ``engine_path`` fixture); these cover what the Python path does apart:
values it hands back to Polars, regular expressions, long literal lists, and the whole
Windows rule set over the SigmaHQ regression events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.detect.sigma.conftest import PATHS, batch_of, rule_yaml, sysmon, use_path
from tests.detect.sigma.test_differential import _records

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_rules, load_text
from kestrel.detect.sigma.compile import CompiledRule
from kestrel.events import Batch


def _both(
    monkeypatch: pytest.MonkeyPatch, rules: list[CompiledRule], batch: Batch
) -> dict[str, list[tuple[int, int]]]:
    out = {}
    for path in PATHS:
        with monkeypatch.context() as m:
            use_path(m, path)
            out[path] = sorted(SigmaEngine(rules).match(batch).iter_rows())
    return out


def _candidates(
    monkeypatch: pytest.MonkeyPatch, rules: list[CompiledRule], batch: Batch
) -> dict[str, list[tuple[int, int]]]:
    """The prefilter's (rule, row) pairs on both paths (``extract_many`` and the kept
    automaton, whose table join is done in Python)."""
    out = {}
    for path in PATHS:
        with monkeypatch.context() as m:
            use_path(m, path)
            out[path] = sorted(SigmaEngine(rules).candidates(batch).iter_rows())
    return out


def _rule(detection: str) -> list[CompiledRule]:
    rules, issues = compile_rules(load_text(rule_yaml(detection)).rules, "raise")
    assert not issues
    return rules


def _runs(monkeypatch: pytest.MonkeyPatch, detection: str, lines: list[Any]) -> list[int]:
    """Rows the rule fires on, the same on both paths (asserted)."""
    batch = batch_of([sysmon(1, n, CommandLine=v) for n, v in enumerate(lines, 1)])
    found = _both(monkeypatch, _rule(detection), batch)
    assert found["python"] == found["polars"]
    return [row for _, row in found["polars"]]


def test_regex_on_text_outside_ascii_goes_to_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rust's \d is Unicode (Arabic-Indic digits match), RE2's is ASCII: the predicate must
    # hand such text to Polars, not answer itself.
    det = "    sel:\n        CommandLine|re: 'x\\d+y'\n    condition: sel"
    assert _runs(monkeypatch, det, ["x\u0663\u0664y", "x12y", "xy"]) == [0, 1]


def test_regex_dollar_is_end_of_text(monkeypatch: pytest.MonkeyPatch) -> None:
    det = "    sel:\n        CommandLine|re: 'abc$'\n    condition: sel"
    assert _runs(monkeypatch, det, ["xabc", "xabc\n", "abcx"]) == [0]


def test_backtracking_regex_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a+)+b on a long run of a's takes Python's re exponential time; RE2 does not.
    det = "    sel:\n        CommandLine|re: '(a+)+b'\n    condition: sel"
    assert _runs(monkeypatch, det, ["a" * 40, "a" * 40 + "b"]) == [1]


def test_long_contains_list_and_empty_value(monkeypatch: pytest.MonkeyPatch) -> None:
    values = "".join(f"            - 'tok{i}x'\n" for i in range(40))
    det = f"    sel:\n        CommandLine|contains:\n{values}    condition: sel"
    assert _runs(monkeypatch, det, ["a tok7x b", "tok7", "TOK39X"]) == [0, 2]
    empty = "    sel:\n        CommandLine|contains:\n            - ''\n            - 'zz'\n"
    assert _runs(monkeypatch, empty + "    condition: sel", ["a", "zz"]) == [0, 1]


def test_not_of_missing_field(monkeypatch: pytest.MonkeyPatch) -> None:
    det = (
        "    sel:\n        CommandLine|contains: 'a'\n"
        "    f:\n        ParentImage|endswith: '\\x.exe'\n    condition: sel and not f"
    )
    assert _runs(monkeypatch, det, ["a", "b"]) == [0]


def test_prefilter_clauses_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two literal clauses (``and`` of two selections): a record needs a literal of each.
    det = (
        "    a:\n        CommandLine|contains: 'alpha'\n"
        "    b:\n        CommandLine|contains:\n            - 'beta'\n            - 'gamma'\n"
        "    condition: a and b"
    )
    lines = ["alpha beta", "alpha", "gamma", "x GAMMA alpha", "none", "beta alpha alpha"]
    batch = batch_of([sysmon(1, n, CommandLine=v) for n, v in enumerate(lines, 1)])
    pairs = _candidates(monkeypatch, _rule(det), batch)
    assert pairs["python"] == pairs["polars"]
    assert [row for _, row in pairs["python"]] == [0, 3, 5]
    assert _runs(monkeypatch, det, lines) == [0, 3, 5]


def test_number_compared_with_text_goes_to_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    # A string test on the integer EventID column: Polars decides what that means.
    rules = _rule("    sel:\n        EventID|startswith: '1'\n    condition: sel")
    batch = batch_of([sysmon(1, 1, CommandLine="a")])
    found = _both(monkeypatch, rules, batch)
    assert found["python"] == found["polars"]


@pytest.mark.datasets
@pytest.mark.slow
def test_paths_agree_on_the_regression_events(
    datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sigma = datasets / "sigma"
    batch = batch_of(_records(sigma / "sigma_regression_data.zip", tmp_path))
    loaded = load_rules([sigma / "sigma_rules_windows_cloud.zip"])
    compiled, _ = compile_rules([r for r in loaded.rules if r.logsource.product == "windows"])
    assert sum(r.pred is not None for r in compiled) > 0.95 * len(compiled)
    found = _both(monkeypatch, compiled, batch)
    assert len({rule for rule, _ in found["polars"]}) > 150  # the rules do fire here
    assert found["python"] == found["polars"]
    pairs = _candidates(monkeypatch, compiled, batch)
    assert pairs["python"] == pairs["polars"]


def test_registry_logsources_scanned_together_keep_their_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # registry_add / delete / set / event share Sysmon 12-14 records and one literal scan;
    # each rule still sees only its own logsource's events.
    det = "    sel:\n        TargetObject|contains: 'kestrelkey'\n    condition: sel"
    texts = [
        rule_yaml(det, cat).replace("11111111", f"1111111{n}")
        for n, cat in enumerate(["registry_add", "registry_set", "registry_event"])
    ]
    rules, issues = compile_rules(load_text("\n---\n".join(texts)).rules, "raise")
    assert not issues
    key = "HKLM\\Software\\KestrelKey"
    batch = batch_of(
        [
            sysmon(12, 1, EventType="CreateKey", TargetObject=key),
            sysmon(13, 2, EventType="SetValue", TargetObject=key),
            sysmon(14, 3, EventType="RenameKey", TargetObject=key),
            sysmon(13, 4, EventType="SetValue", TargetObject="HKLM\\Other"),
        ]
    )
    for path in PATHS:
        with monkeypatch.context() as m:
            use_path(m, path)
            assert SigmaEngine(rules).family  # they are one family
            found = sorted(SigmaEngine(rules).match(batch).iter_rows())
        assert found == [(0, 0), (1, 1), (2, 0), (2, 1), (2, 2)], path
