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


def test_batch_moments_per_group_match_the_per_event_reference() -> None:
    rng = random.Random(11)
    rows = [(f"e{rng.randrange(40)}", rng.choice("ab"), rng.gauss(100, 30)) for _ in range(3000)]
    frame = pl.DataFrame(rows, schema=["entity_id", "metric", "value"], orient="row")
    got = {(r["entity_id"], r["metric"]): r for r in batch_moments(frame).to_dicts()}
    groups: dict[tuple[str, str], list[float]] = {}
    for e, m, v in rows:
        groups.setdefault((e, m), []).append(v)
    assert got.keys() == groups.keys()
    for key, values in groups.items():
        ref = Moments.of(values)
        assert got[key]["n"] == ref.n
        assert got[key]["mean"] == pytest.approx(ref.mean, rel=1e-12)
        assert got[key]["m2"] == pytest.approx(ref.m2, rel=1e-9)


def test_wide_scoring_equals_long_scoring_pivoted() -> None:
    rng = random.Random(5)
    long_base, wide_base = WelfordBaseline(min_samples=5), WelfordBaseline(min_samples=5)
    for step in range(8):
        rows = [
            {"entity_id": f"g{rng.randrange(6)}", "window": step * 100 + i,
             "a": rng.gauss(50, 10) if rng.random() < 0.8 else None,
             "b": rng.gauss(300, 40) if rng.random() < 0.7 else None}
            for i in range(30)
        ]  # fmt: skip
        frame = pl.DataFrame(rows, schema={"entity_id": pl.String, "window": pl.Int64,
                                           "a": pl.Float64, "b": pl.Float64})  # fmt: skip
        wide = wide_base.score_then_learn_wide(frame, ["a", "b"])
        long = frame.unpivot(index=["entity_id", "window"], on=["a", "b"], variable_name="metric")
        scored = long_base.score_then_learn(long.filter(pl.col("value").is_not_null()))
        for row in scored.to_dicts():
            got = wide.filter(pl.col("window") == row["window"]).row(0, named=True)
            m = row["metric"]
            assert got[f"z_{m}"] == row["z"]
            assert got[f"base_mean_{m}"] == row["base_mean"]
            assert got[f"base_n_{m}"] == row["base_n"]
        for m in ("a", "b"):  # no value, no score
            assert wide.filter(pl.col(m).is_null())[f"z_{m}"].null_count() == frame[m].null_count()
        assert wide_base.state.sort("entity_id", "metric").equals(
            long_base.state.sort("entity_id", "metric")
        )
    assert wide["z_a"].drop_nulls().len() > 0
