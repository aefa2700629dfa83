"""The two learnt parts of the endpoint ensemble.

`IsolationModel`: one scikit-learn IsolationForest per event class, trained on the store's
history (`kestrel train endpoint`), saved with its feature list and a format version. The
ancestor's score was inverted (mild outliers scored above extreme ones). Here the score is
the paper's anomaly score ``s = -score_samples(x)`` (about 0.5 for ordinary points, towards
1 for points isolated in few splits), mapped to 0-100 by ``200 * (s - 0.5)``: it only ever
rises with the distance of a point from the data.

`AgentBaseline`: the per-agent streaming model, river's GaussianScorer idea vectorized over
the batch: Welford mean / variance of every feature per agent (`WelfordBaseline`, exact
merges), scored before it learns, silent until ``min_samples`` events. An agent's
behavioural score is its largest |z| across features, 0-100 with ``z_full`` as 100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kestrel.detect.baseline import WelfordBaseline
from kestrel.detect.endpoint.features import FEATURES

MODEL_VERSION = 1


@dataclass
class IsolationModel:
    """Per-class IsolationForests with the features they were trained on."""

    forests: dict[str, Any] = field(default_factory=dict)  # class → fitted IsolationForest
    features: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(FEATURES))
    version: int = MODEL_VERSION

    @classmethod
    def fit(
        cls, frames: Mapping[str, pl.DataFrame], n_estimators: int = 100, seed: int = 0
    ) -> IsolationModel:
        """Train one forest per class on that class's feature rows (empty classes skipped)."""
        from sklearn.ensemble import IsolationForest

        model = cls()
        for name, frame in frames.items():
            if frame.height >= 2:
                forest = IsolationForest(n_estimators=n_estimators, random_state=seed)
                model.forests[name] = forest.fit(_matrix(frame, model.features[name]))
        return model

    def score(self, name: str, frame: pl.DataFrame) -> np.ndarray:
        """0-100 per row, rising with outlier distance; zeros for a class with no forest."""
        forest = self.forests.get(name)
        if forest is None or frame.height == 0:
            return np.zeros(frame.height)
        s = -forest.score_samples(_matrix(frame, self.features[name]))
        return np.clip(200.0 * (s - 0.5), 0.0, 100.0)  # type: ignore[no-any-return]

    def save(self, path: Path) -> None:
        """Write the forests, their features and the format version (joblib)."""
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"version": self.version, "features": self.features,
                     "forests": self.forests}, path)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> IsolationModel:
        """Read a saved model; a different format version is refused, not guessed at."""
        import joblib

        from kestrel.errors import ConfigError

        data = joblib.load(path)
        if data.get("version") != MODEL_VERSION:
            raise ConfigError(f"{path}: model version {data.get('version')}, need {MODEL_VERSION}")
        return cls(dict(data["forests"]), dict(data["features"]), MODEL_VERSION)


def _matrix(frame: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    return frame.select([pl.col(f).cast(pl.Float64).fill_null(0.0) for f in features]).to_numpy()


class AgentBaseline:
    """Per-agent Welford baselines of every feature; scored before learned."""

    def __init__(self, min_samples: int = 50, z_full: float = 8.0, min_std: float = 1.0) -> None:
        self.min_samples, self.z_full = min_samples, z_full
        self.welford = WelfordBaseline(min_samples=min_samples, min_std=min_std)

    def score_then_learn(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame``'s ``row`` with ``behaviour`` (0-100) and the feature of its largest |z|."""
        # The window rate is left out: every event of a window shares it, so it would judge
        # the batch boundary rather than the event (rules and the forest use it instead).
        feats = [f for f in FEATURES[name] if f != "rate"]
        long = (
            frame.select("row", pl.col("host").alias("entity_id"), *feats)
            .unpivot(index=["row", "entity_id"], on=feats, variable_name="metric")
            .with_columns((pl.lit(f"{name}.") + pl.col("metric")).alias("metric"))
        )
        scored = self.welford.score_then_learn(long).with_columns(pl.col("z").abs().fill_null(0.0))
        top = scored.sort("z", descending=True).unique("row", keep="first")
        behaviour = (pl.col("z") / self.z_full * 100.0).clip(upper_bound=100.0)
        return top.select(
            "row", behaviour.alias("behaviour"), pl.col("metric").alias("top_feature")
        )
