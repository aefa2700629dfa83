"""The stage: built from a policy, every enricher on, rows kept, score explained; the
contract every registered enricher keeps (empty batch, unknown policy names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.enrich import ENRICHERS, build_stage, explain_score
from kestrel.enrich.score import ScoreWeights, with_threat_score
from kestrel.errors import ConfigError
from kestrel.events import SCHEMA, make_batch

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"


def test_policy_builds_ioc_and_yara_and_runs(tmp_path: Path):
    stage = build_stage({"ioc": {"feeds": [str(FIX / "feed.csv")]},
                         "yara": {"rules": [str(FIX / "rules" / "strings.yar")]}})  # fmt: skip
    sample = tmp_path / "drop.exe"
    sample.write_bytes(b"..KESTREL-MALWARE-MARKER..")
    batch = make_batch({"event_id": ["a"], "class": ["file"], "activity": ["create"],
                        "file_path": [str(sample)], "file_name": ["mimikatz.exe"]}, 1)  # fmt: skip
    out = stage(batch)
    assert out.schema == SCHEMA
    row = out.to_pylist()[0]
    assert row["ioc_type"] == "filename" and row["yara_rules"].endswith("Kestrel_Test_Marker")
    assert row["threat_score"] == 25 + 40
    assert explain_score(row) == {"ioc": 25.0, "yara": 40.0, "reputation": 0.0, "geography": 0.0}


def test_unknown_enricher_in_policy():
    with pytest.raises(ConfigError, match="nope"):
        build_stage({"nope": {}})


def test_score_is_capped_and_documented_parts():
    batch = make_batch(
        {"event_id": ["x", "y"], "class": ["file", "network"], "ioc_type": ["sha256", None],
         "yara_rules": ["a:1,a:2,a:3,a:4", None], "rep_malicious": [40, 1],
         "geo_country": [None, "KP"]}, 2)  # fmt: skip
    out = with_threat_score(batch, ScoreWeights(geo_watch=frozenset({"KP"})))
    assert out.column("threat_score").to_pylist() == [100.0, 5.0 + 10.0]


@pytest.mark.parametrize("name", sorted(ENRICHERS))
def test_registered_enrichers_are_documented_and_declare_columns(name: str):
    cls = ENRICHERS[name]
    assert cls.__doc__ and cls.name == name
    assert cls.columns and set(cls.columns) <= set(SCHEMA.names)
    assert callable(getattr(cls, "enrich", None))
