"""`RogueTrainingDetector`: a training job that its owner's history does not explain.

The *owner* of a job is its cloud account (else its host): the unit whose habits we know.
Per job (``entity_id`` of ``metric`` events) in a batch:

* ``training.new_instance_type``: an instance type the owner never used, once the owner has
  ``min_jobs`` jobs in its history (novelty);
* ``training.off_hours``: a job first seen off hours (before ``day_start`` / from ``day_end``
  in ``timezone``) at an hour the owner never started a job, owner warm (novelty);
* ``duration_s.zscore`` / ``bytes_out.zscore`` / ``bytes_in.zscore``: a job's run time or
  data transfer ``z`` or more above the owner's baseline of jobs (baseline; scored before
  learnt). ``duration_s`` and byte counts are read as one value per job report.

Until an owner has history nothing about its jobs is "new": the first jobs of a new account
teach the baseline instead of flooding the analyst.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from kestrel.detect.baseline import WelfordBaseline
from kestrel.detect.cloud.common import (
    HourMask,
    StatefulDetector,
    evidence_by,
    frame,
    local_hour,
    make_finding,
    off_hours,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_id", "entity_type", "metric_name", "metric_value",
            "instance_type", "cloud_account", "host", "job_id")  # fmt: skip
_SIZE = ("duration_s", "bytes_out", "bytes_in")
_TYPES = {"owner": pl.String(), "instance_type": pl.String()}
_JOBS = {"owner": pl.String(), "job": pl.String()}


class RogueTrainingDetector(StatefulDetector):
    """Training jobs on a new instance type, at an unusual hour, or unusually long / large."""

    name: ClassVar[str] = "rogue_training"
    # the state is per owner (account, else host), not per job: the distributed runner
    # sends each owner's events to one partition by these columns (first non-null)
    partition_key: ClassVar[tuple[str, ...]] = ("cloud_account", "host")
    _state_names = ("baseline", "types", "jobs", "hours")

    def __init__(
        self,
        z: float = 2.5,
        min_samples: int = 10,
        min_jobs: int = 5,
        day_start: int = 6,
        day_end: int = 22,
        timezone: str = "UTC",
    ) -> None:
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self._baseline = WelfordBaseline(min_samples, min_std=1.0)
        self._types = pl.DataFrame(schema=_TYPES)
        self._jobs = pl.DataFrame(schema=_JOBS)
        self._hours = HourMask()

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the jobs of ``batch`` that break their owner's habits."""
        if "job_id" not in batch.column_names or batch.column("job_id").null_count == len(batch):
            return []  # no job reports (most batches): nothing to convert or filter
        where = (pl.col("class") == "metric") & pl.col("job_id").is_not_null()
        events = frame(batch, _COLUMNS, where)
        if events.is_empty():
            return []
        owner = pl.coalesce("cloud_account", "host", pl.lit("unknown")).alias("owner")
        events = events.with_columns(owner)
        jobs = self._score(events)
        self._learn(events, jobs)
        flagged = jobs.filter(_any_signal(self._params))
        ev = evidence_by(events.join(flagged.select("entity_id"), on="entity_id", how="semi"),
                         ["entity_id"])  # fmt: skip
        return [self._finding(j) for j in flagged.join(ev, on="entity_id").iter_rows(named=True)]

    def _score(self, events: pl.DataFrame) -> pl.DataFrame:
        jobs = _jobs(events, self._params["timezone"])
        njobs = self._jobs.group_by("owner").agg(pl.len().alias("owner_jobs"))
        jobs = jobs.join(njobs, on="owner", how="left").with_columns(
            pl.col("owner_jobs").fill_null(0),
            pl.col("entity_id").is_in(self._jobs["job"].implode()).alias("known_job"),
        )
        seen_type = self._types.with_columns(pl.lit(True).alias("type_seen"))
        jobs = jobs.join(seen_type, on=["owner", "instance_type"], how="left")
        jobs = self._hours.seen(jobs, "owner")
        return jobs.join(self._size_z(events), on="entity_id", how="left")

    def _size_z(self, events: pl.DataFrame) -> pl.DataFrame:
        """Per job, the largest z of its duration / transfer reports against the owner."""
        sizes = events.filter(pl.col("metric_name").is_in(list(_SIZE))).select(
            pl.col("entity_id").alias("job"), pl.col("owner").alias("entity_id"),
            pl.col("metric_name").alias("metric"), pl.col("metric_value").alias("v"),
        )  # fmt: skip
        scored = self._baseline.score_then_learn(sizes, "v")
        return (
            scored.filter(pl.col("z").is_not_null())
            .sort("z", descending=True)
            .group_by("job")
            .agg(pl.col("metric", "z", "v", "base_mean").first())
            .rename({"job": "entity_id", "metric": "size_metric", "z": "size_z"})
        )

    def _learn(self, events: pl.DataFrame, jobs: pl.DataFrame) -> None:
        types = events.select("owner", "instance_type").drop_nulls().unique()
        self._types = pl.concat([self._types, types]).unique(maintain_order=True)
        new = jobs.select("owner", pl.col("entity_id").alias("job"))
        self._jobs = pl.concat([self._jobs, new]).unique(maintain_order=True)
        self._hours.learn(jobs.filter(~pl.col("known_job")), "owner", time="started")

    def _finding(self, j: dict[str, Any]) -> Finding:
        signals = _signals(j, self._params)
        techniques = ["T1496.001", "AML.T0034"]
        if j["size_metric"] in ("bytes_out", "bytes_in"):
            techniques.append("T1530")
        title = "Rogue training: " + ", ".join(s.name for s in signals)
        entity = Entity(j["entity_type"] or "workload", j["entity_id"])
        return make_finding(self.name, entity, j, signals, techniques, title)


def _jobs(events: pl.DataFrame, tz: str) -> pl.DataFrame:
    return events.group_by("entity_id").agg(
        pl.col("entity_type").first(),
        pl.col("owner").first(),
        pl.col("instance_type").drop_nulls().first(),
        pl.col("time").min().alias("started"),
        local_hour(tz).sort_by("time").first().alias("hour"),
    )


def _any_signal(p: dict[str, Any]) -> pl.Expr:
    warm = pl.col("owner_jobs") >= p["min_jobs"]
    new_type = warm & ~pl.col("known_job") & pl.col("type_seen").is_null()
    new_type = new_type & pl.col("instance_type").is_not_null()
    night = off_hours(pl.col("hour"), p["day_start"], p["day_end"])
    odd_hour = warm & ~pl.col("known_job") & night & ~pl.col("hour_seen")
    result: pl.Expr = new_type | odd_hour | (pl.col("size_z").fill_null(0) >= p["z"])
    return result


def _signals(j: dict[str, Any], p: dict[str, Any]) -> list[Signal]:
    out: list[Signal] = []
    warm = j["owner_jobs"] >= p["min_jobs"] and not j["known_job"]
    if warm and j["instance_type"] and not j["type_seen"]:
        out.append(Signal("training.new_instance_type", j["instance_type"], None,
                          f"owner {j['owner']} never used it", "novelty"))  # fmt: skip
    night = j["hour"] < p["day_start"] or j["hour"] >= p["day_end"]
    if warm and night and not j["hour_seen"]:
        out.append(Signal("training.off_hours", j["hour"], None,
                          f"owner never started a job at this hour ({p['timezone']})",
                          "novelty"))  # fmt: skip
    if (j["size_z"] or 0) >= p["z"]:
        detail = f"{j['size_metric']} {j['v']:.0f} vs owner mean {j['base_mean']:.0f}"
        out.append(Signal(f"{j['size_metric']}.zscore", round(j["size_z"], 2), p["z"], detail,
                          "baseline"))  # fmt: skip
    return out
