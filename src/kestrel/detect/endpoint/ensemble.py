"""`EndpointEnsembleDetector`: rules + IsolationForest + per-agent baseline → scored findings.

For each process / network / file event::

    score = 0.4 * rule_score + 0.3 * anomaly + 0.3 * behavioural       (each part 0-100)

``rule_score`` from `kestrel.detect.endpoint.rules`, ``anomaly`` from the per-class
IsolationForest (`IsolationModel`: trained by `kestrel train endpoint`, or on the first
``auto_train`` events of a class when no model is given; events before that score 0),
``behavioural`` from the per-agent Welford baseline (`AgentBaseline`). Events scoring
``alert`` (50) or more become findings, one per host and window: severity medium, high at
``high`` (65), critical at ``critical`` (80). Every weight and threshold is a constructor
argument (the policy). Each finding carries the three parts of its top event, what each
contributed, and the rules that fired, so `kestrel explain` can show the arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from kestrel.detect.endpoint.features import (
    ENDPOINT_CLASSES,
    FEATURES,
    WindowCounter,
    event_features,
    host_key,
)
from kestrel.detect.endpoint.models import AgentBaseline, IsolationModel
from kestrel.detect.endpoint.rules import RULES, rule_hits
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Severity, Signal

_TECHNIQUE = {r.name: r.technique for r in RULES}
_POINTS = {r.name: r.points for r in RULES}


class EndpointEnsembleDetector:
    """Endpoint analytics: the ancestor's rules + anomaly ensemble, scored and explained."""

    name: ClassVar[str] = "endpoint"

    def __init__(
        self,
        rule_weight: float = 0.4,
        anomaly_weight: float = 0.3,
        behaviour_weight: float = 0.3,
        alert: float = 50.0,
        high: float = 65.0,
        critical: float = 80.0,
        window_minutes: int = 60,
        min_samples: int = 50,
        model_path: str | None = None,
        auto_train: int = 2000,
    ) -> None:
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.weights = (rule_weight, anomaly_weight, behaviour_weight)
        self.alert, self.high, self.critical = alert, high, critical
        self.counter = WindowCounter(window_minutes)
        self.baseline = AgentBaseline(min_samples=min_samples)
        self.model = IsolationModel.load(Path(model_path)) if model_path else IsolationModel()
        self.auto_train = auto_train
        self._pending: dict[str, list[pl.DataFrame]] = {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"EndpointEnsembleDetector({args})"

    def clone(self) -> EndpointEnsembleDetector:
        """A fresh detector with the same configuration and nothing learnt."""
        return EndpointEnsembleDetector(**self._params)

    def detect(self, batch: Batch) -> list[Finding]:
        """Score the batch's endpoint events; findings for hosts with alerting events."""
        scored = self.score(batch)
        return self._findings(scored.filter(pl.col("score") >= self.alert))

    def score(self, batch: Batch) -> pl.DataFrame:
        """Every endpoint event of the batch with its parts, rules fired and ensemble score."""
        frame = self._frame(batch)
        parts = [self._score_class(name, frame.filter(pl.col("class") == name))
                 for name in ENDPOINT_CLASSES]  # fmt: skip
        out = (
            pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
            if frame.height
            else frame
        )
        if not out.height:
            return out.with_columns(pl.lit(0.0).alias("score"))
        rw, aw, bw = self.weights
        total = rw * pl.col("rule_score") + aw * pl.col("anomaly") + bw * pl.col("behaviour")
        return out.with_columns(total.alias("score")).sort("row")

    def _frame(self, batch: Batch) -> pl.DataFrame:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.filter(pl.col("class").is_in(list(ENDPOINT_CLASSES)))
        frame = frame.with_row_index("row").with_columns(host_key(), *event_features())
        return self.counter.rate(frame.filter(pl.col("host").is_not_null()))

    def _score_class(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        if not frame.height:
            return frame
        hits = rule_hits(frame)
        anomaly = self.model.score(name, frame)
        self._maybe_train(name, frame)
        behaviour = self.baseline.score_then_learn(name, frame)
        out = pl.concat([frame, hits], how="horizontal").with_columns(
            pl.Series("anomaly", anomaly, dtype=pl.Float64)
        )
        return out.join(behaviour, on="row", how="left").with_columns(
            pl.col("behaviour").fill_null(0.0)
        )

    def _maybe_train(self, name: str, frame: pl.DataFrame) -> None:
        """Fit a class's forest on its first ``auto_train`` events when none was loaded."""
        if name in self.model.forests or self.auto_train <= 0:
            return
        pending = self._pending.setdefault(name, [])
        pending.append(frame.select(FEATURES[name]))
        rows = pl.concat(pending)
        if rows.height >= self.auto_train:
            self.model.forests.update(IsolationModel.fit({name: rows}).forests)
            del self._pending[name]

    def findings_of(self, scored: pl.DataFrame) -> list[Finding]:
        """The findings of an already scored frame (`score`), without scoring it again:
        evaluations score once and need both the scores and the findings."""
        return self._findings(scored.filter(pl.col("score") >= self.alert))

    def severity(self, score: float) -> Severity:
        """Medium from ``alert``, high from ``high``, critical from ``critical``."""
        if score >= self.critical:
            return Severity.CRITICAL
        return Severity.HIGH if score >= self.high else Severity.MEDIUM

    def _findings(self, alerts: pl.DataFrame) -> list[Finding]:
        if not alerts.height:
            return []
        rule_names = [r.name for r in RULES]
        groups = alerts.sort("score", descending=True).group_by(
            ["host", "window_start"], maintain_order=True
        )
        return [self._finding(g, rule_names) for _, g in groups]

    def _finding(self, group: pl.DataFrame, rule_names: list[str]) -> Finding:
        top = group.row(0, named=True)
        fired = [n for n in rule_names if group.get_column(n).any()]
        times = group.get_column("time")
        return Finding(
            detector=self.name,
            entity=Entity("host", str(top["host"])),
            first_seen=times.min(),  # type: ignore[arg-type]
            last_seen=times.max(),  # type: ignore[arg-type]
            severity=self.severity(float(top["score"])),
            signals=(
                *self._parts(top),
                *(Signal(f"rule:{n}", _POINTS[n], None, _evidence(group, n)) for n in fired),
            ),
            title=f"endpoint ensemble score {top['score']:.0f} on {top['host']}",
            techniques=tuple(t for n in fired if (t := _TECHNIQUE[n])),
            evidence=tuple(group.get_column("event_id").head(100).to_list()),
            window_seconds=int(self.counter.window.total_seconds()),
        )

    def _parts(self, top: dict[str, Any]) -> tuple[Signal, ...]:
        rw, aw, bw = self.weights
        parts = (("rule", "rule_score", rw, "rule"), ("anomaly", "anomaly", aw, "baseline"),
                 ("behavioural", "behaviour", bw, "baseline"))  # fmt: skip
        signals = [
            Signal(name, round(float(top[col]), 2), None,
                   f"weight {w} → contributes {w * float(top[col]):.1f}", kind)
            for name, col, w, kind in parts
        ]  # fmt: skip
        detail = f"largest deviation {top.get('top_feature')}"
        signals[2] = Signal("behavioural", signals[2].value, None,
                            f"{signals[2].detail}; {detail}", "baseline")  # fmt: skip
        bands = f"alert ≥ {self.alert}, high ≥ {self.high}, critical ≥ {self.critical}"
        score = Signal("ensemble.score", round(float(top["score"]), 2), self.alert, bands)
        return (score, *signals)

    def state(self) -> dict[str, pa.Table]:
        """Open windows' counters and the per-agent baselines, for the pipeline to keep."""
        return {
            "counter": self.counter.state.to_arrow(),
            "baseline": self.baseline.welford.to_arrow(),
        }

    def load_state(self, tables: dict[str, pa.Table]) -> None:
        """Restore what `state` returned."""
        if "baseline" in tables:
            self.baseline.welford.load_arrow(tables["baseline"])
        if "counter" in tables and tables["counter"].num_rows:
            loaded = pl.from_arrow(tables["counter"])
            assert isinstance(loaded, pl.DataFrame)
            self.counter.state = loaded


def _evidence(group: pl.DataFrame, rule: str) -> str:
    """What an enrichment rule matched (the indicator and its feed, the YARA rules)."""
    column = {"ioc.match": "ioc_indicator", "yara.match": "yara_rules"}.get(rule)
    if column is None or column not in group.columns:
        return ""
    row = group.filter(pl.col(rule)).row(0, named=True)
    if rule == "yara.match":
        return f"YARA {row['yara_rules']}"
    return f"{row['ioc_type']} {row['ioc_indicator']} from {row['ioc_source']} ({row['ioc_field']})"


def scores_array(frame: pl.DataFrame) -> np.ndarray:
    """The ensemble scores as a NumPy array (for evaluation plots)."""
    return frame.get_column("score").to_numpy() if frame.height else np.zeros(0)


def training_frames(batch: Batch, window_minutes: int = 60) -> dict[str, pl.DataFrame]:
    """Feature rows per class of a batch of history, for `IsolationModel.fit`."""
    frame = EndpointEnsembleDetector(window_minutes=window_minutes, auto_train=0)._frame(batch)
    return {c: frame.filter(pl.col("class") == c).select(FEATURES[c]) for c in ENDPOINT_CLASSES}
