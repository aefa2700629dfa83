"""Findings and learnt state of every cloud detector and the profiler, dumped for A/B checks.

Runs `kestrel.detect.cloud.CLOUD_DETECTORS` (fresh) and `EntityProfiler` over:

* the shared datasets' CloudTrail records (stratus, panther, otrf; each dataset as one
  stored batch, read as `kestrel.eval.cloud` reads them), cut into the runner's hourly slices;
* every generated scenario (`kestrel generate cloud`), one day each;
* the throughput bench's events (`bench.detect`), and the same events with some raw records
  rewritten so that the sensitive rules the bench's operations name do match (ransom-note
  keys, ``withDecryption``: true, SSE-C headers, \\u escapes, service-linked roles).

Every finding (its repr: every field) and every state table (rows as Python values), each
list sorted (some come out in hash order), goes into one JSON file; ``--check`` compares a
new run with a file written before a change, names what differs and exits 1 if anything does.

    .venv/bin/python -m bench.detect_equiv --write /tmp/ref.json   # at the start commit
    .venv/bin/python -m bench.detect_equiv --check /tmp/ref.json   # after each change
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bench.detect import api_events, hourly_batches, metric_events

from kestrel.detect.cloud import CLOUD_DETECTORS
from kestrel.detect.cloud.common import forget_batch_columns
from kestrel.detect.profile import EntityProfiler
from kestrel.eval.cloud import SLICE, _read, slices
from kestrel.eval.datasets import load
from kestrel.eval.generate import SCENARIOS
from kestrel.events import Batch

DATASETS = Path("/work/shared/datasets")


def run(batches: list[Batch]) -> dict[str, Any]:
    """Findings (repr) and state tables (rows) after all ``batches``, state carried."""
    stages = {n: c() for n, c in CLOUD_DETECTORS.items()}
    profiler = EntityProfiler()
    findings: list[str] = []
    try:
        for batch in batches:
            for det in stages.values():
                findings.extend(repr(f) for f in det.detect(batch))
            profiler.learn(batch)
        for det in stages.values():
            flush = getattr(det, "flush", None)
            if callable(flush):
                findings.extend(repr(f) for f in flush())
    finally:
        forget_batch_columns()
    state: dict[str, Any] = {}
    for name, det in stages.items():
        for key, table in det.state().items():
            state[f"{name}.{key}"] = [repr(r) for r in table.to_pylist()]
    for key, table in profiler.state().items():
        state[f"profiles.{key}"] = [repr(r) for r in table.to_pylist()]
    # findings and rows in a stable order: several detectors emit them in hash order
    # (group_by without maintain_order), which differs between processes
    return {"findings": sorted(findings), "state": {k: sorted(v) for k, v in state.items()}}


def cases(quick: bool) -> Iterator[tuple[str, list[Batch]]]:
    for name in ("stratus", "panther", "otrf"):
        records = [r for g in load(name, DATASETS) for r in g.records if not r.excluded]
        batch, _ = _read(records)
        yield name, list(slices(batch, SLICE))
    for scenario in SCENARIOS:
        if scenario == "all" and quick:
            continue
        records = [r for g in load(f"generated:{scenario}", DATASETS) for r in g.records]
        batch, _ = _read(records)
        yield f"generated:{scenario}", list(slices(batch, SLICE))
    n, entities = (100_000, 1_000) if quick else (300_000, 3_000)
    rng = np.random.default_rng(11)
    gpus = entities // 5
    api = api_events(n // 2, entities - gpus, rng)
    metrics = metric_events(n - api.height, gpus, rng)
    yield "bench", hourly_batches(pl.concat([api, metrics], how="diagonal_relaxed"))
    yield (
        "bench:rewritten",
        hourly_batches(pl.concat([_rewritten(api), metrics], how="diagonal_relaxed")),
    )


# (operation, old text, new text): each applied to one row in ``_EVERY`` of that operation
_REWRITES = [
    ("PutObject", '"key":"uploads/batch-4411.json"', '"key":"uploads/HOW_TO_DECRYPT.txt"'),
    ("PutObject", '"key":"uploads/batch-4411.json"', '"key":"x/Recover_Files.HTML"'),
    ("PutObject", '"key":"uploads/batch-4411.json"', '"k\\u0065y":"HOW_TO_DECRYPT.txt"'),
    ("PutObject", '"key":"uploads/batch-4411.json"', '"key":"ransom/a.txt"'),
    ("PutObject", '"x-amz-server-side-encryption":"aws:kms"',
     '"x-amz-server-side-encryption-customer-algorithm":"AES256"'),
    ("GetParameter", '"withDecryption":false', '"withDecryption":true'),
    ("GetParameter", '"withDecryption":false', '"withDecryption": true'),
    ("GetParameter", '"withDecryption":false', '"withDecryption":"true"'),
    ("GetParameter", '"withDecryption":false', '"with\\u0044ecryption":true'),
    ("GetParameter", '"eventType":"AwsApiCall"', '"eventType":"AwsServiceEvent"'),
    ("GetParameter", '"requestParameters"', '"responseElements":{"PasswordUpdated":"Failure"},'
     '"requestParameters"'),
]  # fmt: skip
_EVERY = 97


def _rewritten(api: pl.DataFrame) -> pl.DataFrame:
    """``api`` with every rewrite applied to some rows of its operation (each to its own rows)."""
    raw = api["raw"].to_list()
    ops = api["cloud_operation"].to_numpy()
    for k, (op, old, new) in enumerate(_REWRITES):
        rows = np.flatnonzero(ops == op)[k::_EVERY]
        for i in rows.tolist():
            raw[i] = raw[i].replace(old, new)
    linked = np.arange(api.height) % 389 == 5
    entity = api["entity_id"].to_list()
    for i in np.flatnonzero(linked).tolist():
        entity[i] = "arn:aws:iam::111122223333:role/aws-service-role/x.amazonaws.com/AWSx"
    return api.with_columns(pl.Series("raw", raw), pl.Series("entity_id", entity))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path)
    mode.add_argument("--check", type=Path)
    ap.add_argument("--quick", action="store_true", help="smaller bench data, no 'all'")
    args = ap.parse_args()
    want = json.loads(args.check.read_text()) if args.check else None
    out: dict[str, Any] = {}
    bad = 0
    for name, batches in cases(args.quick):
        got = run(batches)
        out[name] = got
        n_state = sum(len(v) for v in got["state"].values())
        line = f"{name}: {len(got['findings'])} findings, {n_state} state rows"
        if want is not None:
            ok = want.get(name) == got
            bad += not ok
            line += " identical" if ok else " DIFFERENT"
            if not ok and name in want:
                for key in ("findings", *sorted(got["state"])):
                    a = (
                        want[name]["findings"]
                        if key == "findings"
                        else want[name]["state"].get(key)
                    )
                    b = got["findings"] if key == "findings" else got["state"][key]
                    if a != b:
                        line += f"\n    differs: {key} ({len(a or [])} vs {len(b)} rows)"
        print(line, flush=True)
    if args.write:
        args.write.write_text(json.dumps(out))
        print(f"written {args.write}")
    if want is not None:
        print("ALL IDENTICAL" if not bad else f"{bad} CASES DIFFER")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
