"""`SigmaDetector(min_level=…)` / `kestrel detect --sigma-level`: only rules of that level or
above run (a site's noise floor); an unknown level is refused, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.detect.sigma.conftest import batch_of, sysmon

from kestrel.detect.sigma import SigmaDetector


def _rule(n: int, level: str | None) -> str:
    head = f"title: Whoami {level}\nid: 00000000-0000-0000-0000-00000000010{n}\n"
    return (
        head + (f"level: {level}\n" if level else "")
        + "logsource:\n    product: windows\n    category: process_creation\n"
        "detection:\n    sel:\n        CommandLine|contains: whoami\n    condition: sel\n"
    )  # fmt: skip


@pytest.fixture
def rules(tmp_path: Path) -> str:
    path = tmp_path / "rules.yml"
    levels = ("informational", "low", "medium", "high", None)
    path.write_text("---\n".join(_rule(i, lv) for i, lv in enumerate(levels)), encoding="utf-8")
    return str(path)


def _titles(detector: SigmaDetector) -> list[str]:
    event = sysmon(1, 1, CommandLine="whoami /all", Image="C:\\Windows\\System32\\whoami.exe")
    return sorted(f.title for f in detector.detect(batch_of([event])))


def test_every_rule_runs_by_default(rules: str) -> None:
    assert _titles(SigmaDetector([rules])) == [
        "Whoami None", "Whoami high", "Whoami informational", "Whoami low", "Whoami medium",
    ]  # fmt: skip


def test_rules_below_the_level_do_not_run(rules: str) -> None:
    # a rule with no level counts as medium, as the compiler reads it
    assert _titles(SigmaDetector([rules], min_level="medium")) == [
        "Whoami None", "Whoami high", "Whoami medium",
    ]  # fmt: skip
    assert _titles(SigmaDetector([rules], min_level="high")) == ["Whoami high"]


def test_an_unknown_level_is_refused(rules: str) -> None:
    with pytest.raises(ValueError, match="unknown Sigma level 'severe'"):
        SigmaDetector([rules], min_level="severe")


def test_technique_ids_missing_from_mitre_are_left_to_the_tags(datasets: Path) -> None:
    """SigmaHQ tags some rules with ATT&CK ids newer than the shared v18.1 tables."""
    from kestrel.detect.sigma.findings import techniques

    assert datasets.is_dir()
    tags = ["attack.t1098", "attack.t1685.002", "attack.defense-impairment"]
    assert techniques(tags) == ("T1098",)
