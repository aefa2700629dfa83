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
from kestrel.detect.sigma import evaluate as evaluate_module
from kestrel.detect.sigma import prefilter as prefilter_module
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


_SIGNED = (
    "    sel:\n        Signed: 'true'\n"
    "    filter_path:\n        ImageLoaded|startswith: 'C:\\Windows\\System32\\'\n"
    "    filter_sig:\n        Signature|startswith: 'Microsoft'\n"
    "    condition: sel and not 1 of filter_*"
)


def _image_loads() -> tuple[Batch, list[int]]:
    """300 signed loads from System32 (the guard rejects them), then loads elsewhere: signed
    by Microsoft, by someone else (the only matches), unsigned, without a signature. (Record
    numbers repeat: they are the seconds of the event's time.)"""
    events = [
        sysmon(
            7,
            n % 50 + 1,
            ImageLoaded=f"C:\\Windows\\System32\\m{n}.dll",
            Signed="true",
            Signature="Evil",
        )
        for n in range(1, 301)
    ]
    outside = [("Microsoft Windows", "true"), ("Evil Corp", "true"), ("Evil", "false")]
    for k, (sig, signed) in enumerate(outside * 2):
        events.append(sysmon(7, 51 + k, ImageLoaded=f"D:\\x{k}.dll", Signed=signed, Signature=sig))
    events.append(sysmon(7, 57, ImageLoaded="D:\\y.dll", Signed="true"))
    return batch_of(events), [301, 304, 306]  # rows of "Evil Corp" (twice), no Signature


def test_guard_spares_decoding_and_keeps_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rules, issues = compile_rules(load_text(rule_yaml(_SIGNED, "image_load")).rules, "raise")
    assert not issues
    # the guard is the ImageLoaded filter only: Signed / Signature are source fields
    assert rules[0].guard is not None and rules[0].guard_columns == {"lc:file_path"}
    batch, expected = _image_loads()
    decoded: list[int] = []
    build = evaluate_module.build_frame  # type: ignore[attr-defined]

    def spy(events: Any, rows: Any, names: Any, raw_rows: Any = None) -> Any:
        if any(n.startswith("lc:raw:") for n in names):
            decoded.append(len(rows) if raw_rows is None else len(raw_rows))
        return build(events, rows, names, raw_rows)

    monkeypatch.setattr(evaluate_module, "build_frame", spy)
    assert sorted(SigmaEngine(rules).match(batch).get_column("__row").to_list()) == expected
    assert decoded == [5]  # 5 of the 305 candidates (signed: "true") pass the guard
    decoded.clear()
    monkeypatch.setattr(evaluate_module, "GUARD_PAIRS", 10**9)  # no guard: the same matches
    monkeypatch.setattr(evaluate_module, "PY_CANDIDATES", 0)
    assert sorted(SigmaEngine(rules).match(batch).get_column("__row").to_list()) == expected
    assert decoded == [305]


def test_no_guard_from_one_branch_of_an_or(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``path or sig``: the schema branch alone is no necessary condition; an event matching
    # by the source field only must still match with guards on.
    det = (
        "    path:\n        ImageLoaded|startswith: 'D:\\'\n"
        "    sig:\n        Signature: 'Evil Corp'\n    condition: path or sig"
    )
    rules, issues = compile_rules(load_text(rule_yaml(det, "image_load")).rules, "raise")
    assert not issues and rules[0].guard is None
    events = [
        sysmon(7, n, ImageLoaded=f"C:\\Windows\\m{n}.dll", Signature="Evil Corp" if n % 2 else "MS")
        for n in range(1, 11)
    ]
    events.append(sysmon(7, 11, ImageLoaded="D:\\y.dll"))
    monkeypatch.setattr(evaluate_module, "GUARD_PAIRS", 0)
    monkeypatch.setattr(evaluate_module, "RAW_SUBSET_ROWS", 0)
    monkeypatch.setattr(evaluate_module, "PY_CANDIDATES", 0)
    rows = sorted(SigmaEngine(rules).match(batch_of(events)).get_column("__row").to_list())
    assert rows == [0, 2, 4, 6, 8, 10]


def test_piece_scan_finds_literals_at_the_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``extract_many`` scans each record cut after every ``","`` (distinct pieces once).
    # Values with quotes, commas and backslashes put literals right against those cuts:
    # ``q",`` is ``q\",`` then the closing quote, so the text holds ``q\","`` and a cut
    # before the delimiter (or one that drops it) splits the literal.
    det = (
        "    sel:\n        CommandLine|contains:\n"
        "            - 'q\",'\n            - 'a\",\"b'\n            - 'tail\\'\n"
        "            - ',\"lead'\n    condition: sel"
    )
    lines = ['q",', 'x a","b y', "tail\\", ',"lead', "none", 'q"', "q,"]
    batch = batch_of([sysmon(1, n, CommandLine=v) for n, v in enumerate(lines, 1)])
    pairs = _candidates(monkeypatch, _rule(det), batch)
    assert [row for _, row in pairs["polars"]] == [0, 1, 2, 3]
    assert pairs["python"] == pairs["polars"]
    with monkeypatch.context() as m:
        m.setattr(prefilter_module, "PIECEWISE", False)
        whole = _candidates(m, _rule(det), batch)
    assert whole == pairs
    assert _runs(monkeypatch, det, lines) == [0, 1, 2, 3]


def test_piece_scan_is_off_for_a_bare_quote() -> None:
    # A literal whose ``"`` is not escaped could start at a cut's quote: no piece scan.
    assert prefilter_module._piecewise_safe(['q\\",', 'a\\",\\"b', "plain"])
    assert not prefilter_module._piecewise_safe(['"lead'])
    assert not prefilter_module._piecewise_safe(['x,"y'])
    assert not prefilter_module._piecewise_safe(['x"'])
