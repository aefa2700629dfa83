"""The prefilter's required literals of regular expressions (`literals.regex_requirement`):
only what every match contains, never one branch of an alternation, nothing for optional or
case-insensitive parts; and a rule filtered by them still fires on every event it matches."""

from __future__ import annotations

import pytest
from tests.detect.sigma.conftest import PATHS, batch_of, rule_yaml, sysmon, use_path

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_text
from kestrel.detect.sigma.literals import regex_requirement


@pytest.mark.parametrize(
    ("pattern", "required"),
    [
        (r"ping\s+-n.{6,64}echo EEEE\s", {"echo eeee"}),  # the longest run, lower-cased
        (r"(?:alpha|beta)x", {"alpha", "beta"}),  # one of the branches, never one alone
        (r"(?:abc|d)zz", None),  # a branch with no literal: nothing required
        (r"(?:abcdef)?ghi", {"ghi"}),  # the optional group, though longer, is not required
        (r"x*abcd", {"abcd"}),
        (r"(abc){2}", {"abc"}),
        (r"(abc){0,2}", None),
        (r"a.b.c", None),  # no run of 3
        (r"(?i)invoke", None),  # case folding: no literal
        (r"xy(?i:invoke)", None),
        (r"C:\\Windows\\x", {"c:\\\\windows\\\\x"}),  # JSON-escaped, as it stands in raw
        (r"say \"hi there\"", {'say \\"hi there\\"'}),
        (r"(?=lookahead)abc", {"abc"}),  # a look-around requires nothing by itself
        (r"[unclosed", None),  # not a pattern: nothing
    ],
)
def test_regex_requirement(pattern: str, required: set[str] | None) -> None:
    found = regex_requirement(pattern)
    assert (set(found) if found is not None else None) == required


def test_regex_rule_is_prefiltered_and_fires_on_every_branch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    det = "    sel:\n        CommandLine|re: 'run (?:alphax|betay)\\s+now'\n    condition: sel"
    rules, issues = compile_rules(load_text(rule_yaml(det)).rules, "raise")
    assert not issues
    assert rules[0].literals == (frozenset({"alphax", "betay"}),)
    lines = ["run alphax now", "run betay   now", "run gammaz now", "RUN BETAY now", "quiet"]
    batch = batch_of([sysmon(1, n, CommandLine=v) for n, v in enumerate(lines, 1)])
    for path in PATHS:
        with monkeypatch.context() as m:
            use_path(m, path)
            engine = SigmaEngine(rules)
            candidates = sorted(row for _, row in engine.candidates(batch).iter_rows())
            found = sorted(engine.match(batch).get_column("__row").to_list())
        assert candidates == [0, 1, 3], path  # the prefilter is case-insensitive
        assert found == [0, 1], path  # the regex is not
