"""`kestrel eval endpoint`: the adversary's process tree is told from the background the way
docs/detectors.md says, the plot is a PNG, and on the shared datasets every OTRF and EVTX
dataset gets a row through the real readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from kestrel.eval.endpoint import adversary_mask, view_pids
from kestrel.eval.plot import plot_windows
from kestrel.events import make_batch

T = datetime(2020, 9, 21, 23, 18, tzinfo=UTC)


def test_adversary_tree_is_created_or_named_processes_and_children() -> None:
    batch = make_batch(
        {"event_id": list("abcdef"), "time": [T] * 6,
         "class": ["process", "network", "file", "file", "process_access", "network"],
         "activity": ["create", None, None, None, None, None],
         "host": ["ws5", "ws5", "ws5", "ws5", "ws5", "dc1"],
         "process_pid": [100, 100, 7456, 200, 900, 100],
         "parent_pid": [7456, None, None, 100, None, None]}, 6)  # fmt: skip
    mask = adversary_mask(batch, "ps 172.18.39.5 WORKSTATION5 powershell 7456 5/0.0")
    # created (100), named (7456), child of the tree (200); not: pid 900, pid 100 on dc1
    assert mask.to_list() == [True, True, True, True, False, False]
    assert 7456 in view_pids("powershell 7456") and not view_pids("no pids here 12")


def test_plot_is_a_png(tmp_path: Path) -> None:
    windows = pl.DataFrame({"corpus": ["otrf", "otrf", "evtx"], "attack": [False, True, True],
                            "score": [10.0, 55.0, 70.0]})  # fmt: skip
    path = plot_windows(windows, tmp_path / "s.png", (50.0, 65.0, 80.0))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.datasets
def test_eval_endpoint_on_the_shared_datasets(datasets: Path, tmp_path: Path) -> None:
    png = tmp_path / "scores.png"
    out = subprocess.run(
        [sys.executable, "-m", "kestrel", "eval", "endpoint", "--datasets", str(datasets),
         "--plot", str(png), "--json"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    corpora = [r["corpus"] for r in result["rows"]]
    assert corpora.count("otrf") == 41 and corpora.count("evtx") >= 270
    otrf_rows = [r for r in result["rows"] if r["corpus"] == "otrf"]
    assert sum(r["attack_events"] for r in otrf_rows) > 0
    assert png.stat().st_size > 10_000
    assert any("otrf background windows" in line for line in result["summary"])
