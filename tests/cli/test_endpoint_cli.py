"""`kestrel train endpoint` over a store, and `kestrel explain` on a stored ensemble finding."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from kestrel.detect.endpoint import EndpointEnsembleDetector
from kestrel.events import make_batch
from kestrel.pipeline.persist import save_findings
from kestrel.store import open_store


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # a wide table: no wrapped signal names
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)  # fmt: skip


def _batch(n: int) -> pa.Table:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    times = pa.array([t0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC"))
    return make_batch(
        {"event_id": [f"e{i}" for i in range(n)], "time": times, "class": ["process"] * n,
         "source": ["agent"] * n, "raw": ["{}"] * n, "activity": ["create"] * n,
         "agent_id": ["a1"] * n, "parent_name": ["explorer.exe"] * (n - 1) + ["winword.exe"],
         "process_name": ["cmd.exe"] * n,
         "process_cmdline": ["cmd /c dir"] * (n - 1) + ["cmd /c vssadmin delete shadows /all"]},
        n)  # fmt: skip


def test_train_then_explain(tmp_path: Path):
    db = str(tmp_path / "k.duckdb")
    store = open_store(db)
    store.append(_batch(50))
    det = EndpointEnsembleDetector(rule_weight=1.0, anomaly_weight=0, behaviour_weight=0,
                                   auto_train=0)  # fmt: skip
    (finding,) = det.detect(_batch(50))
    save_findings(store, [finding])
    store.close()
    model = tmp_path / "m.joblib"
    trained = kestrel("train", "endpoint", "--db", db, "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert model.is_file() and "process: 50" in trained.stdout
    out = kestrel("explain", finding.finding_id[:10], "--db", db)
    assert out.returncode == 0, out.stderr
    for text in ("ensemble.score", "contributes 100.0", "rule:process.shadow_copy_delete"):
        assert text in out.stdout
    assert kestrel("explain", "ffffffff", "--db", db).returncode == 2
