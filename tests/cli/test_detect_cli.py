"""`kestrel detect` / `kestrel findings` as a user runs them: the bundled samples' planted
attacks are caught (samples/README.md), their normal traffic is not, and every export format
comes out in its own shape (Sigma parsed back by pySigma)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

ROOT = Path(__file__).resolve().parents[2]
SVC_BACKUP = "arn:aws:iam::111122223333:user/svc-backup"


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def detected(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    db = str(tmp_path_factory.mktemp("detect") / "k.duckdb")
    assert kestrel("ingest", "--db", db, str(ROOT / "samples")).returncode == 0
    out = kestrel("detect", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    return db, [json.loads(line) for line in out.stdout.splitlines()]


def _by(found: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["detector"], f["entity"]["id"]): f for f in found}


def test_samples_planted_attacks_are_caught(detected) -> None:
    found = _by(detected[1])
    gpu = found[("gpu_hijack", "ft-llama-7f3a")]
    names = {s["name"] for s in gpu["signals"]}
    assert {"gpu_util.sustained", "gpu.new_region", "gpu.off_hours"} <= names
    assert gpu["severity"] == "critical" and str(gpu["first_seen"]).startswith("2024-05-02T01")
    assert ("api_abuse", SVC_BACKUP) in found
    new = found[("new_behaviour", SVC_BACKUP)]
    techniques = {t["id"] for t in new["techniques"]}
    assert {"T1562.008", "T1098.001", "T1555.006"} <= techniques


def test_samples_normal_traffic_is_quiet(detected) -> None:
    entities = {f["entity"]["id"] for f in detected[1]}
    assert entities == {"ft-llama-7f3a", SVC_BACKUP}


def test_findings_are_stored_and_exported(detected) -> None:
    db, found = detected
    table = kestrel("findings", "--db", db)
    assert table.returncode == 0 and "ft-llama-7f3a" in table.stdout
    lines = kestrel("findings", "--db", db, "--format", "ocsf").stdout.splitlines()
    ocsf = [json.loads(x) for x in lines]
    assert len(ocsf) == len(found) and {o["class_uid"] for o in ocsf} == {2004}
    sigma = kestrel("findings", "--db", db, "--format", "sigma", "--severity", "high").stdout
    rules = SigmaCollection.from_yaml(sigma)
    rules.resolve_rule_references()
    high = [f for f in found if f["severity"] in ("high", "critical")]
    assert high and len(high) < len(found)  # the samples hold a low lead too: left out here
    assert sum(isinstance(r, SigmaCorrelationRule) for r in rules.rules) == len(high)


def test_detect_again_reads_nothing_new(detected) -> None:
    again = kestrel("detect", "--db", detected[0])
    assert again.returncode == 0 and "0 events" in again.stdout


def test_unknown_format_is_one_line_error(detected) -> None:
    out = kestrel("findings", "--db", detected[0], "--format", "xml")
    assert out.returncode == 2 and "unknown format" in out.stderr


def test_entity_profiles(detected) -> None:
    db = detected[0]
    listed = json.loads(kestrel("entities", "--db", db, "--json").stdout)
    ids = {p["id"]: p for p in listed}
    assert {"alice", "ft-llama-7f3a", "cv-resnet-22b1"} <= {i.split("/")[-1] for i in ids}
    gpu = ids["ft-llama-7f3a"]
    assert gpu["regions"] == ["ap-southeast-1", "us-east-1"] and gpu["gpu_util_avg"] > 0
    one = json.loads(kestrel("entity", "--db", db, "--json", SVC_BACKUP).stdout)
    assert one["services"]["cloudtrail"]["operations"]["StopLogging"]["calls"] == 1
    assert one["error_rate"] > 0.2 and sum(one["active_hours"]) == one["events"]
    shown = kestrel("entity", "--db", db, f"principal:{SVC_BACKUP}")
    assert shown.returncode == 0 and "StopLogging" in shown.stdout
    assert kestrel("entity", "--db", db, "nobody").returncode == 2


def test_unknown_sigma_level_is_a_usage_error(tmp_path: Path) -> None:
    out = kestrel("detect", "--db", str(tmp_path / "k.duckdb"), "--sigma-level", "severe")
    assert out.returncode == 2 and "--sigma-level" in out.stderr and "critical" in out.stderr
    assert "Traceback" not in out.stderr
