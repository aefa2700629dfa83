"""Ingest throughput and peak memory: 1,000,000 CloudTrail records and 1,000,000 Sysmon records.

The records are generated from real shapes: the Stratus Red Team detonation records for
CloudTrail, the OTRF Sysmon events (NXLog JSON) for Sysmon, each copied with fresh ids, times,
addresses and principals so that every record is distinct. Each measurement runs in its own
process so that its peak RSS is its own.

    .venv/bin/python bench/ingest.py --records 1000000            # all measurements
    .venv/bin/python bench/ingest.py --records 200000 --kind cloudtrail

Prints, per input: records, seconds, events/s and peak RSS, for the reader alone (framing,
decoding, normalization, Arrow batches) and for reader + DuckDB store (idempotent append).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
STRATUS = DATASETS / "stratus_red_team" / "stratus_detonation_logs.zip"
OTRF = DATASETS / "otrf_security_datasets" / "atomic" / "windows"
FIXTURE = ROOT / "tests" / "fixtures" / "cloudtrail" / "delivery.json"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"]


def cloudtrail_templates() -> list[dict[str, Any]]:
    """The real Stratus records (or the test fixture when the datasets are absent)."""
    if not STRATUS.exists():
        return list(json.loads(FIXTURE.read_text())["Records"])
    out: list[dict[str, Any]] = []
    with zipfile.ZipFile(STRATUS) as z:
        for name in z.namelist():
            if name.endswith(".json"):
                out.extend(json.loads(z.read(name)))
    return out


def sysmon_templates() -> list[dict[str, Any]]:
    """Real Sysmon events from the OTRF datasets (NXLog JSON lines)."""
    out: list[dict[str, Any]] = []
    for path in sorted(OTRF.rglob("*.zip"))[:8]:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                for line in z.read(name).splitlines():
                    rec = json.loads(line)
                    if rec.get("SourceName") == "Microsoft-Windows-Sysmon":
                        out.append(rec)
    if not out:
        sys.exit(f"no Sysmon templates: {OTRF} is missing")
    return out


def generate_cloudtrail(n: int, path: Path) -> None:
    """Write ``n`` distinct CloudTrail records as JSON Lines."""
    templates = cloudtrail_templates()
    rng = random.Random(7)
    base = datetime(2024, 6, 1, tzinfo=UTC)
    enc = msgspec.json.Encoder()
    with path.open("wb") as f:
        for i in range(n):
            rec = dict(templates[i % len(templates)])
            rec["eventID"] = f"{i:08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
            rec["eventTime"] = (base + timedelta(milliseconds=37 * i)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            rec["sourceIPAddress"] = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            rec["awsRegion"] = REGIONS[i % len(REGIONS)]
            ident = dict(rec.get("userIdentity") or {})
            ident["arn"] = f"arn:aws:iam::123456789012:user/user{i % 500}"
            rec["userIdentity"] = ident
            f.write(enc.encode(rec) + b"\n")


def generate_sysmon(n: int, path: Path) -> None:
    """Write ``n`` distinct Sysmon events (NXLog JSON lines, as the OTRF data ships them)."""
    templates = sysmon_templates()
    base = datetime(2024, 6, 1, tzinfo=UTC)
    enc = msgspec.json.Encoder()
    with path.open("wb") as f:
        for i in range(n):
            rec = dict(templates[i % len(templates)])
            t = base + timedelta(milliseconds=13 * i)
            rec["RecordNumber"] = i
            rec["@timestamp"] = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if "UtcTime" in rec:
                rec["UtcTime"] = t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            rec["Hostname"] = f"WKS{i % 200:03d}.corp.local"
            f.write(enc.encode(rec) + b"\n")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, path: Path, fmt: str, store: bool) -> dict[str, Any]:
    """One measurement, in this process: read (and store) ``path``."""
    from kestrel.ingest import Source, ingest_paths, read_source
    from kestrel.store import DuckDBStore

    start = time.perf_counter()
    if store:
        with tempfile.TemporaryDirectory() as tmp:
            db = DuckDBStore(Path(tmp) / "bench.duckdb")
            total = ingest_paths([path], db, fmt).total()
            db.close()
        events, rejected = total.stored, total.rejected
    else:
        _, chunks = read_source(Source(str(path), lambda: path.open("rb")), fmt)
        events = rejected = 0
        for chunk in chunks:
            events += chunk.batch.num_rows
            rejected += len(chunk.rejected)
    seconds = time.perf_counter() - start
    return {"kind": kind, "stage": "reader+store" if store else "reader", "events": events,
            "rejected": rejected, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds), "peak_rss_mb": round(_peak_mb())}  # fmt: skip


def run(args: argparse.Namespace) -> None:
    kinds = ["cloudtrail", "sysmon"] if args.kind == "all" else [args.kind]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            path = Path(tmp) / f"{kind}.jsonl"
            t = time.perf_counter()
            (generate_cloudtrail if kind == "cloudtrail" else generate_sysmon)(args.records, path)
            size_mb = path.stat().st_size / 1e6
            print(f"# generated {args.records:,} {kind} records, {size_mb:,.0f} MB, "
                  f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
            fmt = "cloudtrail" if kind == "cloudtrail" else "winlog-json"
            for store in (False, True):
                result = _measure(kind, path, fmt, store)
                print(_line(result))


def _line(r: dict[str, Any]) -> str:
    return (f"{r['kind']:10} {r['stage']:13} {r['events']:>9,} events {r['seconds']:>7.2f} s "
            f"{r['events_per_s']:>9,} events/s  peak {r['peak_rss_mb']:>5,} MB  "
            f"rejected {r['rejected']}")  # fmt: skip


def _measure(kind: str, path: Path, fmt: str, store: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, str(path), fmt, str(int(store))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, path, fmt, store = sys.argv[2:6]
        print(json.dumps(child(kind, Path(path), fmt, store == "1")))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["cloudtrail", "sysmon", "all"], default="all")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
