"""`kestrel detect` enriches each slice before the detectors: the bundled agent sample's
dropper and mining-pool addresses, listed in the example policy's feed, come out as a
finding whose signals name the indicator and its feed; `--no-enrich` turns that off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "enrich.example.yml"


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)  # fmt: skip


def _detect(db: Path, *extra: str) -> list[dict[str, Any]]:
    assert kestrel("ingest", "--db", str(db), str(ROOT / "samples" / "agent")).returncode == 0
    out = kestrel("detect", "--db", str(db), "--json", *extra)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.slow
def test_ioc_in_the_samples_becomes_a_finding(tmp_path: Path) -> None:
    found = _detect(tmp_path / "k.duckdb", "--policy", str(POLICY))
    intel = [f for f in found if f["detector"] == "intel"]
    assert len(intel) == 1
    signals = {s["name"]: s for s in intel[0]["signals"]}
    assert signals["ioc:ip"]["value"] in {"203.0.113.66", "198.51.100.23"}
    assert "samples.csv" in signals["ioc:ip"]["detail"]
    values = {s["value"] for s in intel[0]["signals"] if s["name"] == "ioc:ip"}
    assert values == {"203.0.113.66", "198.51.100.23"}


@pytest.mark.slow
def test_no_enrich_means_no_intel(tmp_path: Path) -> None:
    found = _detect(tmp_path / "k.duckdb", "--policy", str(POLICY), "--no-enrich")
    assert not [f for f in found if f["detector"] == "intel"]
