"""The enrichment policy: defaults that run on a bare install, a policy file's section with
paths taken from its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.enrich.policy import build_stage, default_section, load_section


def test_defaults_follow_what_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("VT_API_KEY", raising=False)
    bare = default_section(tmp_path)
    assert "ioc" not in bare and "yara" not in bare and "reputation" not in bare
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "a.csv").write_text("indicator,type\n198.51.100.7,ip\n")
    (tmp_path / "yara").mkdir()
    (tmp_path / "yara" / "r.yar").write_text('rule R { strings: $a = "x" condition: $a }')
    monkeypatch.setenv("VT_API_KEY", "k")
    full = default_section(tmp_path)
    assert full["ioc"]["feeds"] == [str(tmp_path / "feeds" / "a.csv")]
    assert full["yara"]["rules"] == [str(tmp_path / "yara")] and "reputation" in full
    assert [e.name for e in build_stage(full).enrichers][:2] == ["ioc", "yara"]


def test_policy_file_paths_are_relative_to_it(tmp_path: Path):
    (tmp_path / "f.csv").write_text("indicator,type\n198.51.100.7,ip\n")
    policy = tmp_path / "p.yml"
    policy.write_text("enrich:\n  ioc: {feeds: [f.csv]}\n")
    assert load_section(policy) == {"ioc": {"feeds": [str(tmp_path / "f.csv")]}}
    policy.write_text("enrich: {}\n")
    assert load_section(policy) == {}
