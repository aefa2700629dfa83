"""The distributed runner's throughput with 1, 2 and 4 workers, and its end-to-end latency.

Each run gets a fresh PostgreSQL database and RabbitMQ vhost, starts N ``kestrel worker``
processes (all detectors but Sigma, as the fault test runs them), publishes the generated
cloud stream (normal traffic plus every attack scenario) to intake one hourly slice per
message, and waits until every detect message is committed.

* events/s = events / (first publish → last detect commit), everything published at once;
* latency = per detect message, intake publish → the commit of its findings (the same
  transaction as its "done" row); p50 / p99 over all messages. Measured twice: with the
  whole stream queued at once (latency under backlog) and with slices published at a
  steady pace below capacity (``--pace`` seconds between slices).

    .venv/bin/python -P bench/distributed.py --hours 168    # -P: bench/sigma.py is not pySigma
    .venv/bin/python -P bench/distributed.py --hours 580    # ≈ 1,000,000 events

``--fault`` runs the issue's fault test at full size instead (the same code as
tests/pipeline/test_distributed.py, in tests/pipeline/distributed_fault.py): 3 workers, one
killed with SIGKILL a quarter of the way through and another started; then every event
must be stored exactly once and the findings must equal one embedded run's:

    .venv/bin/python -P bench/distributed.py --fault --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from kestrel.eval.cloud import _ingest
from kestrel.eval.datasets import generated
from kestrel.events import Batch
from kestrel.pipeline.codec import encode, time_slices
from kestrel.pipeline.distributed import batch_id, publish_flush
from kestrel.pipeline.operations import topology_for
from kestrel.pipeline.transport import RabbitTransport
from kestrel.store import DuckDBStore, EventFilter, open_store

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 8
SKIP = ("sigma",)


def stream(hours: int) -> Batch:
    """The generated stream, read by Kestrel's readers (via a scratch DuckDB store)."""
    ref = DuckDBStore(":memory:")
    _ingest(ref, generated("all", hours, 3).records)
    events = ref.events(EventFilter())
    ref.close()
    return events


def spawn(n: int, db: str, amqp: str, prefix: str, logs: Path) -> list[subprocess.Popen[bytes]]:
    """N worker processes."""
    code = "from kestrel.cli import main; main()"
    args = ["worker", "--broker", amqp, "--db", db, "--skip", ",".join(SKIP),
            "--prefix", prefix, "--partitions", str(PARTITIONS)]  # fmt: skip
    procs = []
    for i in range(n):
        with (logs / f"w{i}.log").open("ab") as out:
            procs.append(subprocess.Popen([sys.executable, "-c", code, *args], stdout=out,
                                          stderr=out))  # fmt: skip
    return procs


async def feed(amqp: str, prefix: str, events: Batch, pace: float) -> dict[str, float]:
    """Publish the slices (then the flush); each batch id's publish time (epoch s)."""
    transport = await RabbitTransport(amqp, topology_for(prefix, PARTITIONS, SKIP)).open()
    sent: dict[str, float] = {}
    origin = events.column("time")[0].as_py()
    for part in time_slices(events, timedelta(hours=1), origin):
        bid = batch_id(part)
        sent[bid] = time.time()
        await transport.publish("intake", encode(part), {"kind": "events"}, bid)
        if pace:
            await asyncio.sleep(pace)
    await publish_flush(transport, "bench")
    await transport.close()
    return sent


def wait_done(db: str, expected: int, timeout: float) -> list[tuple[str, float]]:
    """(message id, commit epoch) of every detect message, once all have committed."""
    store = open_store(db)
    deadline = time.monotonic() + timeout
    try:
        while True:
            rows = store.query(
                "SELECT message_id, extract(epoch FROM done)::float8 AS t FROM pipeline_done"
            ).to_pylist()
            if len(rows) >= expected or time.monotonic() > deadline:
                return [(r["message_id"], r["t"]) for r in rows]
            time.sleep(0.5)
    finally:
        store.close()


def expected_messages(events: Batch) -> int:
    """How many detect messages the stream makes (events + flush, every group)."""
    from kestrel.pipeline.codec import split_by_partition

    topology = topology_for("x", PARTITIONS, SKIP)
    n = len(topology.routes) - 1
    origin = events.column("time")[0].as_py()
    for part in time_slices(events, timedelta(hours=1), origin):
        for g in topology.groups:
            n += len(split_by_partition(part, PARTITIONS, tuple(g.split("+"))))
    return n


def run(workers: int, events: Batch, pace: float) -> dict[str, float]:
    """One measurement with ``workers`` processes; events/s and latency percentiles."""
    from tests.services import temporary_database, temporary_vhost

    expected = expected_messages(events)
    with (
        temporary_database() as db,
        temporary_vhost() as (amqp, prefix),
        tempfile.TemporaryDirectory() as logs,
    ):
        procs = spawn(workers, db, amqp, prefix, Path(logs))
        time.sleep(4.0)  # let the workers start and subscribe
        try:
            start = time.time()
            sent = asyncio.run(feed(amqp, prefix, events, pace))
            done = wait_done(db, expected, 3600)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    lat = sorted(t - sent[m.split(".")[0]] for m, t in done if m.split(".")[0] in sent)
    end = max(t for _, t in done)
    return {"workers": workers, "events": events.num_rows, "seconds": end - start,
            "events_per_s": events.num_rows / (end - start), "messages": len(done),
            "p50_s": statistics.median(lat), "p99_s": lat[int(0.99 * (len(lat) - 1))]}  # fmt: skip


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fault(n_events: int, partitions: int, timeout: float) -> None:
    """The fault run over the first ``n_events`` events of the generated stream."""
    from tests.pipeline import distributed_fault as fr
    from tests.services import temporary_database, temporary_vhost

    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load {load()}", flush=True)
    t = time.monotonic()
    events = fr.generated_stream(n_events // 1700 + 2)
    events = events.slice(0, min(n_events, events.num_rows))
    print(f"{events.num_rows:,} events generated and read in {time.monotonic() - t:.0f} s",
          flush=True)  # fmt: skip
    t = time.monotonic()
    expected = fr.embedded_findings(events)
    embedded_s = time.monotonic() - t
    print(f"embedded run: {len(expected)} findings in {embedded_s:.0f} s, load {load()}",
          flush=True)  # fmt: skip
    with (
        temporary_database() as db,
        temporary_vhost() as (amqp, prefix),
        tempfile.TemporaryDirectory() as logs,
    ):
        result = asyncio.run(fr.fault_run(db, amqp, prefix, events, Path(logs),
                                          partitions=partitions, timeout=timeout,
                                          progress=lambda m: print(m, flush=True)))  # fmt: skip
        print(f"distributed run done in {result.seconds:.0f} s, load {load()}", flush=True)
        fr.check(result, db, events, expected)
    print(f"events {result.events:,}; stored rows {result.stored:,}, distinct "
          f"{result.distinct:,}; duplicates {result.duplicates}; missing {result.missing}; "
          f"extra {result.extra}; findings expected {result.findings_expected}, got "
          f"{result.findings_got}, equal {result.findings_equal}; wall {result.seconds:.0f} s "
          f"({result.events / result.seconds:,.0f} events/s) with 3 workers + 1 restarted; "
          f"embedded {embedded_s:.0f} s; load {load()}")  # fmt: skip
    if not result.ok:
        print(f"FAILED: only expected {result.only_expected}, only got {result.only_got}")
        sys.exit(1)
    print("OK: every event stored exactly once, findings equal")


def main() -> None:
    """Parse arguments, run every measurement, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=168)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pace", type=float, default=0.5, help="s between slices (paced run)")
    parser.add_argument("--fault", action="store_true", help="the fault run instead")
    parser.add_argument("--events", type=int, default=1_000_000, help="--fault: stream size")
    parser.add_argument("--partitions", type=int, default=4, help="--fault: partitions")
    parser.add_argument("--timeout", type=float, default=3600, help="--fault: seconds")
    args = parser.parse_args()
    if args.fault:
        fault(args.events, args.partitions, args.timeout)
        return
    events = stream(args.hours)
    print(f"{events.num_rows:,} events, {args.hours} hourly slices, {PARTITIONS} partitions")
    for n in args.workers:
        r = run(n, events, 0.0)
        print(f"backlog  workers={n}: {r['events_per_s']:,.0f} events/s ({r['seconds']:.1f} s), "
              f"latency p50 {r['p50_s']:.2f} s p99 {r['p99_s']:.2f} s")  # fmt: skip
    for n in args.workers:
        r = run(n, events, args.pace)
        print(f"paced    workers={n}: one slice per {args.pace} s; "
              f"latency p50 {r['p50_s']:.2f} s p99 {r['p99_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
