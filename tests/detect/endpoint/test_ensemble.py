"""The endpoint ensemble, and the ancestor's defects it must not repeat: an inverted
anomaly score, a rate counter that never resets, stop events read as "parent pid 0"."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from kestrel.detect import DETECTORS
from kestrel.detect.endpoint import EndpointEnsembleDetector, IsolationModel, WindowCounter
from kestrel.detect.endpoint.rules import rule_hits
from kestrel.events import make_batch
from kestrel.findings import Severity

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _times(seconds: list[int]) -> pa.Array:
    return pa.array([T0 + timedelta(seconds=s) for s in seconds], pa.timestamp("us", tz="UTC"))


def _procs(cmdlines: list[str], start: int = 0, parents: list[str] | None = None) -> pa.Table:
    n = len(cmdlines)
    return make_batch(
        {
            "event_id": [f"e{start + i}" for i in range(n)],
            "time": _times(list(range(start, start + n))),
            "class": ["process"] * n,
            "activity": ["create"] * n,
            "agent_id": ["a1"] * n,
            "process_name": ["cmd.exe"] * n,
            "parent_name": parents or ["explorer.exe"] * n,
            "process_cmdline": cmdlines,
            "process_path": [r"C:\Windows\System32\cmd.exe"] * n,
        },
        n,
    )


def test_anomaly_score_rises_with_outlier_distance():
    """The ancestor inverted the IsolationForest score; ours must grow with distance."""
    rng = np.random.default_rng(0)
    normal = pl.DataFrame(
        {
            f: rng.normal(10, 1, 500)
            for f in ("dst_port", "public_dst", "bytes_out_log", "rate", "threat_score")
        }
    )
    model = IsolationModel.fit({"network": normal}, seed=0)
    probes = pl.DataFrame({f: [10.0 + d for d in (0, 3, 6, 12, 50)] for f in normal.columns})
    scores = model.score("network", probes)
    assert all(b >= a for a, b in itertools.pairwise(scores)), scores
    assert scores[0] < 20 and scores[-1] > 40 and scores[-1] > scores[1]


def test_model_saved_with_features_and_version(tmp_path: Path):
    frame = pl.DataFrame(
        {
            f: [float(i % 7) for i in range(50)]
            for f in ("path_depth", "in_temp", "exec_ext", "rate", "threat_score")
        }
    )
    model = IsolationModel.fit({"file": frame})
    model.save(tmp_path / "m.joblib")
    again = IsolationModel.load(tmp_path / "m.joblib")
    assert again.features["file"] == model.features["file"] and again.version == 1
    assert np.allclose(again.score("file", frame), model.score("file", frame))


def test_rate_counter_resets_per_window_across_batches():
    """The ancestor's "per hour" counter never reset; ours counts one window only."""
    counter = WindowCounter(window_minutes=60)

    def frame(seconds: list[int]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "host": ["h"] * len(seconds),
                "class": ["process"] * len(seconds),
                "time": _times(seconds),
            }
        )

    first = counter.rate(frame([0, 10, 20]))  # 12:00 window: 3 events
    second = counter.rate(frame([30, 3600, 3601]))  # 1 more in 12:00, 2 in 13:00
    assert first["rate"].to_list() == [3.0, 3.0, 3.0]
    assert second["rate"].to_list() == [4.0, 2.0, 2.0]
    assert counter.state["count"].to_list() == [2]  # only the open window is kept


def test_stop_events_are_not_orphans():
    """The ancestor counted every process stop as "parent is pid 0"."""
    frame = pl.DataFrame(
        {
            "activity": ["terminate", "terminate", "create", "create"],
            "parent_pid": [None, 0, 0, 0],
            "process_pid": [1200, 1300, 1400, 4],
            "in_temp": [0.0] * 4,
            "rate": [1.0] * 4,
            "dst_port": [None] * 4,
        },
        schema_overrides={"parent_pid": pl.Int64, "dst_port": pl.Float64},
    )
    for col in ("ioc_type", "yara_rules", "parent_name", "process_name", "process_cmdline"):
        frame = frame.with_columns(pl.lit(None, pl.String).alias(col))
    frame = frame.with_columns(pl.lit(None, pl.Int64).alias("rep_malicious"))
    assert rule_hits(frame)["process.orphan"].to_list() == [False, False, True, False]


def test_weights_thresholds_and_explained_finding():
    det = EndpointEnsembleDetector(
        rule_weight=1.0, anomaly_weight=0.0, behaviour_weight=0.0, auto_train=0, min_samples=10_000
    )
    batch = _procs(
        ["cmd /c dir", "cmd /c vssadmin delete shadows /all /quiet"],
        parents=["explorer.exe", "winword.exe"],
    )
    (finding,) = det.detect(batch)
    assert finding.severity == Severity.CRITICAL and finding.evidence == ("e1",)
    names = {s.name: s for s in finding.signals}
    assert names["ensemble.score"].value == 100.0 and names["ensemble.score"].threshold == 50.0
    assert "contributes 100.0" in names["rule"].detail
    assert {"rule:process.shadow_copy_delete", "rule:process.office_spawns_shell"} <= set(names)
    assert set(finding.techniques) == {"T1490", "T1204.002"}
    assert [det.severity(s) for s in (50, 64.9, 65, 80)] == [
        Severity.MEDIUM,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    ]


def test_default_weights_need_more_than_a_rule_alone():
    det = EndpointEnsembleDetector(auto_train=0)
    assert det.detect(_procs(["cmd /c vssadmin delete shadows /all"])) == []  # 0.4 * 80 = 32


def test_behavioural_part_learns_then_flags_a_new_shape():
    det = EndpointEnsembleDetector(min_samples=20, auto_train=0)
    det.score(_procs(["cmd /c dir"] * 40))
    scored = det.score(_procs(["cmd /c dir", "cmd /c " + "x " * 60], start=40))
    assert scored["behaviour"].to_list()[0] == 0.0 and scored["behaviour"].to_list()[1] == 100.0


def test_contract_registered_empty_clone_state():
    assert DETECTORS["endpoint"] is EndpointEnsembleDetector
    det = EndpointEnsembleDetector(min_samples=5, auto_train=0)
    assert det.detect(make_batch({}, 0)) == []
    det.score(_procs(["cmd /c dir"] * 10))
    fresh = det.clone()
    assert repr(fresh) == repr(det) and fresh.baseline.welford.state.height == 0
    fresh.load_state(det.state())
    assert fresh.baseline.welford.state.height == det.baseline.welford.state.height


@pytest.mark.parametrize("cls", ["network", "file"])
def test_other_classes_score(cls: str):
    batch = make_batch(
        {
            "event_id": ["x"],
            "time": _times([0]),
            "class": [cls],
            "host": ["h"],
            "dst_port": [4444],
            "file_path": [r"C:\Users\Public\a.exe"],
        },
        1,
    )
    scored = EndpointEnsembleDetector(auto_train=0).score(batch)
    assert scored["rule_score"].to_list() == [30.0]
