"""Cloud detection throughput: baselining + every cloud detector over 1,000,000 events.

The events are generated straight into schema-conformant Arrow batches (no JSON, no reader:
ingest has its own bench): 10,000 entities, by default 8,000 cloud principals making API calls
(CloudTrail-shaped, with a raw record each) and 2,000 GPU workloads reporting utilisation,
memory and power (metric events), spread over 24 hours and cut into the embedded runner's
hourly slices. Every cloud detector (`kestrel.detect.cloud.CLOUD_DETECTORS`) and the entity
profiler see every slice in time order, as `kestrel detect` runs them, with their state
carried between slices; the store is left out so that the figure is the detectors' own.

    .venv/bin/python -m bench.detect                     # 1,000,000 events, 10,000 entities
    .venv/bin/python -m bench.detect --events 200000 --entities 2000

(`-m`, not the file path: bench/sigma.py would shadow the `sigma` package.)

Prints the load average (the machine may be shared: compare CPU seconds between runs), events,
wall and CPU seconds, events/s (overall and per detector) and the process's peak RSS before
and after detection.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from kestrel.detect.cloud import CLOUD_DETECTORS
from kestrel.detect.profile import EntityProfiler
from kestrel.events import SCHEMA, Batch

START = datetime(2026, 1, 5, tzinfo=UTC)
REGIONS = np.array(["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"])
OPS = np.array(
    [
        "DescribeInstances",
        "GetObject",
        "PutObject",
        "ListBuckets",
        "AssumeRole",
        "Decrypt",
        "GetParameter",
        "SendMessage",
        "CreateTags",
        "GetCallerIdentity",
    ]
)
SERVICES = np.array(["ec2", "s3", "s3", "s3", "sts", "kms", "ssm", "sqs", "ec2", "sts"])
# each operation's requestParameters as CloudTrail writes them (shortened): the raw record
# carries the field names and values the sensitive-operation rules' text gates look for, so
# the bench does not let those gates skip rows that real records would send to the JSON tests
PARAMS = np.array(
    [
        '{"instancesSet":{"items":[{"instanceId":"i-0a1b2c3d4e5f60718"}]},"filterSet":{}}',
        '{"bucketName":"data-lake-prod","key":"exports/2024/05/part-00017.parquet",'
        '"Host":"data-lake-prod.s3.us-east-1.amazonaws.com"}',
        '{"bucketName":"data-lake-prod","key":"uploads/batch-4411.json",'
        '"x-amz-server-side-encryption":"aws:kms"}',
        "null",
        '{"roleArn":"arn:aws:iam::111122223333:role/app-runner","roleSessionName":"botocore",'
        '"durationSeconds":3600}',
        '{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"alias/app"}',
        '{"name":"/app/prod/feature-flags","withDecryption":false}',
        '{"queueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}',
        '{"resourcesSet":{"items":[{"resourceId":"i-0a1b2c3d4e5f60718"}]},'
        '"tagSet":{"items":[{"key":"team","value":"ml"}]}}',
        "null",
    ]
)
METRICS = np.array(["gpu_util", "mem_util", "power_watts"])


def api_events(n: int, principals: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` CloudTrail-shaped API calls by ``principals`` principals over 24 hours."""
    who = rng.integers(0, principals, n)
    op = rng.integers(0, len(OPS), n)
    denied = rng.random(n) < 0.01
    frame = pl.DataFrame(
        {
            "entity_id": pl.Series(
                [f"arn:aws:iam::111122223333:user/p{i}" for i in range(principals)]
            ).gather(who),
            "time": _times(n, rng),
            "cloud_operation": OPS[op],
            "cloud_service": SERVICES[op],
            "cloud_region": REGIONS[who % len(REGIONS)],
            "denied": denied,
        }
    )
    eid = pl.format("ct-{}", pl.int_range(pl.len()))
    raw = pl.concat_str(
        pl.lit('{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"'),
        pl.col("entity_id"),
        pl.lit('","accountId":"111122223333"},"eventID":"'),
        eid,
        pl.lit('","eventName":"'),
        pl.col("cloud_operation"),
        pl.lit('","userAgent":"aws-cli/2.15.30 Python/3.11.8 Linux/6.1 botocore/2.4.5",'),
        pl.lit('"requestParameters":'),
        pl.Series(PARAMS).gather(op),
        pl.lit(',"readOnly":false,"eventType":"AwsApiCall"}'),
    )
    error = pl.when(pl.col("denied")).then(pl.lit("AccessDenied")).otherwise(None)
    return frame.with_columns(
        error.alias("cloud_error_code"),
        eid.alias("event_id"),
        raw.alias("raw"),
        pl.lit("cloudtrail").alias("source"),
        pl.lit("api_activity").alias("class"),
        pl.lit("principal").alias("entity_type"),
        pl.lit("IAMUser").alias("cloud_principal_type"),
        pl.lit("aws").alias("cloud_provider"),
        pl.col("entity_id").str.extract(r"/(p\d+)$").alias("user_name"),
    ).drop("denied")


def metric_events(n: int, workloads: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` GPU metric events (utilisation / memory / power) of ``workloads`` GPUs."""
    gpu = rng.integers(0, workloads, n)
    metric = rng.integers(0, 3, n)
    util = np.clip(rng.normal(40 + (gpu % 5) * 10, 8), 0, 100)
    value = np.choose(metric, [util, util * 0.6, 60 + util * 2.5])
    frame = pl.DataFrame(
        {
            "entity_id": pl.Series([f"gpu-node-{i}/gpu0" for i in range(workloads)]).gather(gpu),
            "time": _times(n, rng),
            "metric_name": METRICS[metric],
            "metric_value": value,
            "cloud_region": REGIONS[gpu % len(REGIONS)],
        }
    )
    return frame.with_columns(
        pl.format("m-{}", pl.int_range(pl.len())).alias("event_id"),
        pl.lit("metrics").alias("source"),
        pl.lit("metric").alias("class"),
        pl.lit("workload").alias("entity_type"),
        pl.lit("g5.xlarge").alias("instance_type"),
        pl.lit("aws").alias("cloud_provider"),
    )


def _times(n: int, rng: np.random.Generator) -> pl.Series:
    offsets = np.sort(rng.integers(0, 24 * 3600 * 1_000_000, n))
    return pl.Series(offsets).cast(pl.Duration("us")) + START


def hourly_batches(frame: pl.DataFrame, hours: int = 1) -> list[Batch]:
    """The events as schema-conformant Arrow batches, one per hour (per ``hours`` hours),
    in time order."""
    full = frame.sort("time").with_columns(
        [
            pl.lit(None).cast(_dtype(f.type)).alias(f.name)
            for f in SCHEMA
            if f.name not in frame.columns
        ]
    )
    hour = full["time"].dt.truncate(f"{hours}h")
    table = full.select(SCHEMA.names).to_arrow().cast(SCHEMA)
    bounds = np.flatnonzero(np.diff(hour.to_numpy().astype("int64"))) + 1
    edges = [0, *bounds.tolist(), table.num_rows]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(edges)]


def _dtype(arrow_type: pa.DataType) -> Any:
    return pl.from_arrow(pa.array([], arrow_type)).dtype  # type: ignore[union-attr]


def peak_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    batches: list[Batch], skip: tuple[str, ...] = ()
) -> tuple[dict[str, float], dict[str, float], int]:
    """Wall and CPU seconds per detector (and the profiler) over all batches, state
    carried; and the number of findings. ``skip``: detectors left out."""
    stages: dict[str, Any] = {n: c() for n, c in CLOUD_DETECTORS.items() if n not in skip}
    profiler = EntityProfiler()
    wall = dict.fromkeys([*stages, "profiles"], 0.0)
    cpu = dict(wall)
    findings = 0

    def timed(name: str, step: Any, *args: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = step(*args)
        wall[name] += time.perf_counter() - t
        cpu[name] += time.process_time() - c
        return out

    for batch in batches:
        for name, det in stages.items():
            findings += len(timed(name, det.detect, batch))
        timed("profiles", profiler.learn, batch)
    timed("profiles", profiler.state)  # what the runner saves at the end: all folded in
    return wall, cpu, findings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip", nargs="*", default=[], help="detectors to leave out")
    ap.add_argument(
        "--slice-hours",
        type=int,
        default=1,
        help="hours per batch (the runner cuts 1; larger slices change what is scored "
        "against which state, so only to see the per-batch share of the cost)",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    gpus = args.entities // 5
    api = api_events(args.events // 2, args.entities - gpus, rng)
    metrics = metric_events(args.events - api.height, gpus, rng)
    batches = hourly_batches(pl.concat([api, metrics], how="diagonal_relaxed"), args.slice_hours)
    n = sum(b.num_rows for b in batches)
    before = peak_mb()
    load_before = os.getloadavg()
    t, c = time.perf_counter(), time.process_time()
    wall, cpu, findings = run(batches, tuple(args.skip))
    total, total_cpu = time.perf_counter() - t, time.process_time() - c
    load_after = os.getloadavg()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip
    print(
        f"{n:,} events ({api.height:,} API calls of {args.entities - gpus:,} principals, "
        f"{metrics.height:,} metric events of {gpus:,} GPUs) in {len(batches)} batches of "
        f"{args.slice_hours} h"
    )
    print(
        f"all cloud detectors + profiles: {total:.2f} s wall ({n / total:,.0f} events/s), "
        f"{total_cpu:.2f} s CPU ({n / total_cpu:,.0f} events per CPU-second); "
        f"{findings:,} findings"
    )
    for name in wall:
        print(
            f"  {name:15} {wall[name]:6.2f} s wall {n / wall[name]:12,.0f} events/s "
            f"{cpu[name]:6.2f} s CPU {n / cpu[name]:12,.0f} events/CPU-s"
        )
    if args.skip:
        print(f"  (left out: {', '.join(args.skip)})")
    print(f"peak RSS: {before:,.0f} MB after generating, {peak_mb():,.0f} MB after detection")


if __name__ == "__main__":
    main()
