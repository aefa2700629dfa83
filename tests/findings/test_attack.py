"""Every technique id Kestrel's cloud detectors can emit exists in MITRE's tables."""

from __future__ import annotations

import csv
import gzip

import yaml

from kestrel.detect.cloud.sensitive import load_table
from kestrel.findings.attack import KNOWN, unknown

EMITTED = {"T1526", "T1580", "T1087.004", "T1535", "AML.T0075", "T1496.001", "AML.T0034",
           "AML.T0029", "T1530", "T1078.004", "T1552.005"}  # fmt: skip


def _all_emitted() -> set[str]:
    return EMITTED | {t for r in load_table() for t in r.techniques}


def test_every_emitted_id_is_known() -> None:
    assert unknown(sorted(_all_emitted())) == []


def test_ids_exist_in_shared_mitre(datasets) -> None:
    folder = datasets / "mitre"
    with (folder / "enterprise_attack_v18.1_techniques.csv").open(encoding="utf-8") as f:
        attack = {r["technique_id"] for r in csv.DictReader(f) if r["revoked"] != "True"}
    with gzip.open(folder / "ATLAS.yaml.gz", "rt", encoding="utf-8") as f:
        atlas = {t["id"] for m in yaml.safe_load(f)["matrices"] for t in m["techniques"]}
    assert sorted(_all_emitted() - attack - atlas) == []
    assert sorted(set(KNOWN) - attack - atlas) == []
    assert not {"AML.T0048", "AML.T0020", "AML.T1526"} & _all_emitted()
