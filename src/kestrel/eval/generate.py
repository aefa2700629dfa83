"""Synthetic cloud and GPU-workload telemetry, for demos and tests: **not real data**.

`generate` writes CloudTrail-shaped JSON Lines (``cloudtrail.jsonl``), GPU metric rows in the
metrics reader's JSON form (``gpu_metrics.jsonl``) and, in a separate file, the labels
(``labels.jsonl``: one line per attack record, keyed by CloudTrail ``eventID`` or the metric
row's ``sample_id``, with the scenario and techniques). Normal traffic is always there; each
attack scenario is mixed into it. Everything is drawn from one seeded ``random.Random``, so
the same arguments give the same bytes.

Normal: developers working 08-19 UTC (reads, a few writes), service roles around the clock,
inference GPUs with a daily load curve, training jobs started in office hours on one
instance type. The attacks: ``gpu_hijack`` (a miner pins an inference GPU at night),
``rogue_training`` (a job on an instance type the account never used, pulling far more
data), ``api_abuse`` (a stolen developer key enumerating eight regions with many denied
calls, then creating a key for another user and stopping CloudTrail).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCENARIOS = ("normal", "gpu_hijack", "rogue_training", "api_abuse")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
ACCOUNT = "111122223333"
_DEV_OPS = (
    "DescribeInstances",
    "ListBuckets",
    "GetObject",
    "DescribeSecurityGroups",
    "ListFunctions20150331",
    "GetCallerIdentity",
    "PutObject",
    "CreateTags",
    "DescribeVolumes",
    "GetBucketLocation",
)
_SVC_OPS = ("GetObject", "PutObject", "Decrypt", "GetParameter", "SendMessage", "AssumeRole")
_SERVICES = {
    "DescribeInstances": "ec2",
    "DescribeSecurityGroups": "ec2",
    "CreateTags": "ec2",
    "DescribeVolumes": "ec2",
    "ListBuckets": "s3",
    "GetObject": "s3",
    "PutObject": "s3",
    "GetBucketLocation": "s3",
    "ListFunctions20150331": "lambda",
    "GetCallerIdentity": "sts",
    "AssumeRole": "sts",
    "Decrypt": "kms",
    "GetParameter": "ssm",
    "SendMessage": "sqs",
    "ListUsers": "iam",
    "ListRoles": "iam",
    "CreateAccessKey": "iam",
    "StopLogging": "cloudtrail",
    "DescribeRegions": "ec2",
    "ListSecrets": "secretsmanager",
}
_REGIONS = (
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
)


@dataclass
class Generated:
    """What `generate` produced: records per file and the labels."""

    cloudtrail: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)


def generate(scenario: str, hours: int = 24, seed: int = 7) -> Generated:
    """Normal traffic for ``hours`` plus the attack ``scenario`` (``all``: every attack)."""
    if scenario not in (*SCENARIOS, "all"):
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}, all")
    rng = random.Random(seed)
    out = Generated()
    _normal_api(rng, hours, out)
    _normal_gpu(rng, hours, out)
    attacks = SCENARIOS[1:] if scenario == "all" else (scenario,)
    for name in attacks:
        if name != "normal":
            _ATTACKS[name](rng, hours, out)
    out.cloudtrail.sort(key=lambda r: str(r["eventTime"]))
    out.metrics.sort(key=lambda r: str(r["timestamp"]))
    return out


def write(gen: Generated, folder: Path) -> dict[str, Path]:
    """Write the three JSON Lines files into ``folder``; their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {n: folder / f"{n}.jsonl" for n in ("cloudtrail", "gpu_metrics", "labels")}
    for name, rows in (
        ("cloudtrail", gen.cloudtrail),
        ("gpu_metrics", gen.metrics),
        ("labels", gen.labels),
    ):
        with paths[name].open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    return paths


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _call(
    rng: random.Random,
    t: datetime,
    who: dict[str, Any],
    op: str,
    region: str,
    error: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One CloudTrail record."""
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": _iso(t),
        "eventName": op,
        "eventSource": f"{_SERVICES.get(op, 'ec2')}.amazonaws.com",
        "awsRegion": region,
        "sourceIPAddress": who.get("ip", "10.0.0.1"),
        "userAgent": who.get("ua", "aws-cli/2.15"),
        "userIdentity": {k: v for k, v in who.items() if k not in ("ip", "ua")},
        "requestParameters": params,
        "responseElements": None,
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = "not authorized"
    return rec


def _user(name: str) -> dict[str, str]:
    return {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "userName": name,
        "accountId": ACCOUNT,
        "principalId": f"AIDA{name.upper()}",
        "accessKeyId": f"AKIA{name.upper()[:12]}",
    }


def _role(name: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/s1",
        "accountId": ACCOUNT,
        "principalId": f"AROA{name.upper()}:s1",
        "sessionContext": {
            "sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "userName": name}
        },
    }


def _poisson_times(
    rng: random.Random,
    start: datetime,
    hours: int,
    per_minute: float,
    active: tuple[int, int] = (0, 24),
) -> Iterator[datetime]:
    """Event times of a Poisson process, only inside the ``active`` UTC hours."""
    t, end = start, start + timedelta(hours=hours)
    while True:
        t += timedelta(seconds=rng.expovariate(per_minute / 60.0))
        if t >= end:
            return
        if active[0] <= t.hour < active[1]:
            yield t


def _normal_api(rng: random.Random, hours: int, out: Generated) -> None:
    for i in range(6):
        who = _user(f"dev{i}")
        ops = rng.sample(_DEV_OPS, 6)
        for t in _poisson_times(rng, START, hours, 1.5, (8, 19)):
            out.cloudtrail.append(_call(rng, t, who, rng.choice(ops), "us-east-1"))
    for i in range(4):
        who = _role(f"svc-{i}")
        region = _REGIONS[i % 2]
        for t in _poisson_times(rng, START, hours, 3.0):
            out.cloudtrail.append(_call(rng, t, who, rng.choice(_SVC_OPS), region))


def _metric_row(t: datetime, host: str, **values: Any) -> dict[str, Any]:
    return {
        "timestamp": _iso(t),
        "host": host,
        "gpu_index": 0,
        "provider": "aws",
        "account": ACCOUNT,
        "region": "us-east-1",
        **values,
    }


def _inference_util(rng: random.Random, t: datetime) -> float:
    """A daily load curve: quiet at night, busy in the afternoon, with noise."""
    hour = t.hour + t.minute / 60
    day = 0.5 + 0.5 * max(0.0, 1 - abs(hour - 15) / 9)
    return round(min(100.0, max(0.0, 15 + 45 * day + rng.gauss(0, 4))), 1)


def _normal_gpu(rng: random.Random, hours: int, out: Generated) -> None:
    for i in range(4):
        host = f"inf-node-{i}"
        for m in range(hours * 60):
            t = START + timedelta(minutes=m)
            util = _inference_util(rng, t)
            out.metrics.append(
                _metric_row(
                    t,
                    host,
                    instance_type="g5.xlarge",
                    gpu_util=util,
                    mem_util=round(util * 0.6, 1),
                    power_watts=round(60 + util * 1.6 + rng.gauss(0, 5), 1),
                )
            )
    day = 0
    while day * 24 < hours:
        for start_hour in (8, 10, 12, 14, 16):
            start = START + timedelta(days=day, hours=start_hour, minutes=rng.randint(0, 50))
            if start < START + timedelta(hours=hours):
                _job(rng, out, start, f"train-{day}-{start_hour}", "p4d.24xlarge", 90, 5e9)
        day += 1


def _job(
    rng: random.Random,
    out: Generated,
    start: datetime,
    job: str,
    itype: str,
    minutes: int,
    bytes_in: float,
) -> list[dict[str, Any]]:
    """One training job's samples (a minute apart) and its end-of-job report."""
    rows = []
    for m in range(minutes):
        util = round(min(100.0, rng.gauss(95, 2)), 1)
        rows.append(
            _metric_row(
                start + timedelta(minutes=m),
                f"train-{job}",
                job_id=job,
                job_name="finetune",
                instance_type=itype,
                gpu_util=util,
                power_watts=round(rng.gauss(380, 15), 1),
            )
        )
    report = {
        "duration_s": float(minutes * 60 + rng.randint(-300, 300)),
        "bytes_in": round(bytes_in * rng.uniform(0.8, 1.2)),
    }
    rows.append(
        _metric_row(
            start + timedelta(minutes=minutes),
            f"train-{job}",
            job_id=job,
            job_name="finetune",
            instance_type=itype,
            **report,
        )
    )
    out.metrics.extend(rows)
    return rows


def _label(
    out: Generated, rows: list[dict[str, Any]], key: str, scenario: str, techniques: list[str]
) -> None:
    for i, row in enumerate(rows):
        if key == "sample_id":
            row["sample_id"] = f"{scenario}-{i}"
        out.labels.append({"id": row[key], "scenario": scenario, "techniques": techniques})


def _at(hours: int, share: float) -> datetime:
    return START + timedelta(minutes=int(hours * 60 * share))


def _gpu_hijack(rng: random.Random, hours: int, out: Generated) -> None:
    start = START + timedelta(hours=min(2.5, hours * 0.5))
    end = _iso(start + timedelta(minutes=45))
    out.metrics = [  # the miner's load replaces what the GPU would have measured
        r
        for r in out.metrics
        if not (r["host"] == "inf-node-2" and _iso(start) <= r["timestamp"] < end)
    ]
    rows = []
    for m in range(45):
        t = start + timedelta(minutes=m)
        rows.append(
            _metric_row(
                t,
                "inf-node-2",
                instance_type="g5.xlarge",
                gpu_util=round(rng.uniform(98, 100), 1),
                mem_util=12.0,
                power_watts=round(rng.gauss(300, 5), 1),
            )
        )
    out.metrics.extend(rows)
    _label(out, rows, "sample_id", "gpu_hijack", ["T1496.001", "AML.T0034"])


def _rogue_training(rng: random.Random, hours: int, out: Generated) -> None:
    rows = _job(rng, out, _at(hours, 0.95), "rogue-1", "p5.48xlarge", 40, 9e10)
    _label(out, rows, "sample_id", "rogue_training", ["T1496.001", "AML.T0034"])


def _api_abuse(rng: random.Random, hours: int, out: Generated) -> None:
    who = dict(_user("dev1"), ip="203.0.113.50", ua="python-requests/2.31")
    t = _at(hours, 0.9)
    rows = []
    for i in range(300):
        op = rng.choice(
            (
                "DescribeInstances",
                "ListUsers",
                "ListRoles",
                "ListSecrets",
                "DescribeRegions",
                "ListBuckets",
            )
        )
        err = "AccessDenied" if rng.random() < 0.4 else None
        at = t + timedelta(seconds=i)
        rows.append(_call(rng, at, who, op, _REGIONS[i % len(_REGIONS)], err))
    end = t + timedelta(seconds=301)
    rows.append(_call(rng, end, who, "CreateAccessKey", "us-east-1", None, {"userName": "admin"}))
    rows.append(_call(rng, end, who, "StopLogging", "us-east-1", None, {"name": "main"}))
    out.cloudtrail.extend(rows)
    _label(out, rows, "eventID", "api_abuse", ["T1580", "T1098.001", "T1562.008"])


_ATTACKS = {"gpu_hijack": _gpu_hijack, "rogue_training": _rogue_training, "api_abuse": _api_abuse}
