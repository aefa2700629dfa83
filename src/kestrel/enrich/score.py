"""The enrichment threat score, 0-100: a capped sum of what the enrichers found.

    threat_score = min(100, ioc + yara + reputation + geography)

* ``ioc``: by indicator type (`ScoreWeights.ioc`): a known-bad hash 60, a URL 50, an IP or
  domain 45, a CIDR 35, a file name or file-name pattern 25.
* ``yara``: 40 for the first matching rule, +10 for each further one, at most 60.
* ``reputation``: ``50 * min(1, rep_malicious / 10)``: ten engines flagging it is the full 50;
  one engine gives 5 (single-engine verdicts are often false positives).
* ``geography``: 10 when ``geo_country`` is in the policy's watch list (empty by default:
  where traffic goes is a policy decision, not something Kestrel presumes).

Nothing found → 0. The weights are constructor arguments so a policy can change them, and
`explain` gives each part by name, so a score is never a bare number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kestrel.enrich.base import set_columns
from kestrel.events import Batch

IOC_WEIGHTS: dict[str, float] = {
    "md5": 60.0, "sha1": 60.0, "sha256": 60.0, "url": 50.0, "ip": 45.0, "domain": 45.0,
    "cidr": 35.0, "filename": 25.0,
}  # fmt: skip


@dataclass(frozen=True)
class ScoreWeights:
    """The score's parameters (policy-configurable)."""

    ioc: dict[str, float] = field(default_factory=lambda: dict(IOC_WEIGHTS))
    yara_first: float = 40.0
    yara_each: float = 10.0
    yara_max: float = 60.0
    reputation_max: float = 50.0
    reputation_full_at: int = 10
    geo_watch: frozenset[str] = frozenset()
    geo_points: float = 10.0

    def parts(self) -> dict[str, pl.Expr]:
        """Each component as a Polars expression over the enrichment columns."""
        n_rules = pl.col("yara_rules").str.count_matches(",").fill_null(-1) + 1
        yara = pl.when(n_rules > 0).then(
            (self.yara_first + (n_rules - 1) * self.yara_each).clip(upper_bound=self.yara_max)
        )
        rep = pl.col("rep_malicious").cast(pl.Float64) / self.reputation_full_at
        return {
            "ioc": pl.col("ioc_type").replace_strict(
                self.ioc, default=0.0, return_dtype=pl.Float64
            ),
            "yara": yara.otherwise(0.0),
            "reputation": (rep.clip(upper_bound=1.0) * self.reputation_max).fill_null(0.0),
            "geography": pl.when(pl.col("geo_country").is_in(list(self.geo_watch)))
            .then(self.geo_points)
            .otherwise(0.0),
        }

    def total(self) -> pl.Expr:
        """The capped sum."""
        parts = [e.fill_null(0.0) for e in self.parts().values()]
        return pl.sum_horizontal(parts).clip(upper_bound=100.0)


DEFAULT_WEIGHTS = ScoreWeights()


def with_threat_score(batch: Batch, weights: ScoreWeights = DEFAULT_WEIGHTS) -> Batch:
    """The batch with ``threat_score`` computed from its enrichment columns."""
    frame = pl.from_arrow(batch.select(["ioc_type", "yara_rules", "rep_malicious", "geo_country"]))
    assert isinstance(frame, pl.DataFrame)
    score = frame.select(weights.total().alias("s")).get_column("s")
    return set_columns(batch, {"threat_score": score.to_arrow()})


def explain_score(
    row: dict[str, object], weights: ScoreWeights = DEFAULT_WEIGHTS
) -> dict[str, float]:
    """Each component of one event's score, by name (for `kestrel explain`)."""
    cols = ("ioc_type", "yara_rules", "rep_malicious", "geo_country")
    schema = {"ioc_type": pl.String, "yara_rules": pl.String, "rep_malicious": pl.Int64,
              "geo_country": pl.String}  # fmt: skip
    frame = pl.DataFrame({c: [row.get(c)] for c in cols}, schema=schema)
    return {k: float(frame.select(v.fill_null(0.0)).item()) for k, v in weights.parts().items()}
