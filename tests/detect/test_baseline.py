"""The vectorized Welford baseline against numpy and the per-event reference (differential)."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from kestrel.detect.baseline import Moments, WelfordBaseline, batch_moments, merge_states


@pytest.mark.parametrize("seed", range(5))
def test_batched_merge_matches_numpy(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.gauss(50, 20) for _ in range(rng.randint(50, 2000))]
    base = WelfordBaseline()
    cuts = sorted(rng.sample(range(1, len(values)), 5))
    for lo, hi in zip([0, *cuts], [*cuts, len(values)], strict=True):
        base.learn(pl.DataFrame({"entity_id": "e", "metric": "m", "value": values[lo:hi]}))
    row = base.state.row(0, named=True)
    assert row["n"] == len(values)
    assert row["mean"] == pytest.approx(np.mean(values), abs=1e-9)
    assert row["m2"] / (row["n"] - 1) == pytest.approx(np.var(values, ddof=1), rel=1e-9)


def test_scalar_reference_agrees_with_vectorized() -> None:
    values = [float(v) for v in range(1, 334)] + [7.5] * 1000
    ref = Moments.of(values)
    merged = Moments.of(values[:1000]).merge(Moments.of(values[1000:]))
    assert merged.mean == pytest.approx(ref.mean, abs=1e-9)
    assert merged.variance == pytest.approx(ref.variance, rel=1e-9)
    frame = pl.DataFrame({"entity_id": "e", "metric": "m", "value": values})
    state = merge_states(batch_moments(frame.head(100)), batch_moments(frame.tail(1233)))
    assert state["mean"][0] == pytest.approx(ref.mean, abs=1e-9)


def test_score_before_learn_and_min_samples() -> None:
    base = WelfordBaseline(min_samples=30, min_std=1.0)
    quiet = pl.DataFrame({"entity_id": "e", "metric": "m", "value": [10.0, 11.0] * 10})
    scored = base.score_then_learn(quiet)
    assert scored["z"].null_count() == 20  # warm-up: nothing scored
    base.learn(quiet)
    spike = pl.DataFrame({"entity_id": "e", "metric": "m", "value": [90.0] * 50})
    z = base.score_then_learn(spike)["z"].to_list()
    # the whole burst is scored against the state before it: it cannot whiten itself
    assert min(z) > 50
    assert base.state["n"][0] == 90
