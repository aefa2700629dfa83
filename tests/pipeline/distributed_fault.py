"""The fault run, shared by the test (a small stream) and ``bench.distributed --fault`` (the
issue's 1,000,000 events): N ``kestrel worker`` processes consume a generated stream; one is
killed with SIGKILL mid-stream and another started; optionally RabbitMQ itself is stopped
and started again mid-stream. At the end every event must be stored exactly once and the
findings must equal those of one embedded run over the same events.

Everything here runs against the real RabbitMQ and PostgreSQL (never mocks).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from kestrel.eval.cloud import _ingest
from kestrel.eval.datasets import generated
from kestrel.events import Batch
from kestrel.pipeline import default_detectors, load_findings, run_detection
from kestrel.pipeline.codec import encode, split_by_partition, time_slices
from kestrel.pipeline.distributed import batch_id
from kestrel.pipeline.operations import topology_for
from kestrel.pipeline.transport import RabbitTransport
from kestrel.store import DuckDBStore, EventFilter, open_store

SKIP = ("sigma",)
Findings = set[tuple[str, int]]


def generated_stream(hours: int, seed: int = 3) -> Batch:
    """The generated stream (normal traffic plus every attack scenario), read by Kestrel's
    readers (via a scratch DuckDB store), in store order."""
    ref = DuckDBStore(":memory:")
    _ingest(ref, generated("all", hours, seed).records)
    events = ref.events(EventFilter())
    ref.close()
    return events


def embedded_findings(events: Batch) -> Findings:
    """(span id, severity) of every finding of one embedded run over ``events``."""
    ref = DuckDBStore(":memory:")
    ref.append(events)
    run_detection(ref, default_detectors(SKIP), profiles=False)
    found = {(f.span_id, int(f.severity)) for f in load_findings(ref)}
    ref.close()
    return found


def reference(hours: int, seed: int = 3) -> tuple[Batch, Findings]:
    """The generated stream and the findings of one embedded run over it."""
    events = generated_stream(hours, seed)
    return events, embedded_findings(events)


def spawn(
    pg_url: str, amqp: str, prefix: str, partitions: int, log: Path
) -> subprocess.Popen[bytes]:
    """One ``kestrel worker`` process (all detectors but Sigma)."""
    args = ["worker", "--broker", amqp, "--db", pg_url, "--skip", ",".join(SKIP),
            "--prefix", prefix, "--partitions", str(partitions)]  # fmt: skip
    with log.open("ab") as out:
        code = "from kestrel.cli import main; main()"
        return subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=out)


def expected_ids(events: Batch, partitions: int, tag: str) -> set[str]:
    """The ids of every detect message the stream makes (events and flush, every group)."""
    topology = topology_for("x", partitions, SKIP)
    ids = {f"flush.{tag}.{r}" for r in topology.routes if r != "intake"}
    origin = events.column("time")[0].as_py()
    for part in time_slices(events, timedelta(hours=1), origin):
        for group in topology.groups:
            found = split_by_partition(part, partitions, tuple(group.split("+")))
            ids |= {f"{batch_id(part)}.detect.{group}.{p}" for p in found}
    return ids


# -- the broker --------------------------------------------------------------------------------
def rabbitmqctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl`` (raises FileNotFoundError where there is none)."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise FileNotFoundError("rabbitmqctl not on PATH")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def broker_controllable() -> str | None:
    """None when this process may stop and start the local RabbitMQ, else why not."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH (the broker is not local)"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root: rabbitmqctl stop_app / start_app are not permitted"
    try:
        done = rabbitmqctl("-q", "status", timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"rabbitmqctl status failed: {exc}"
    if done.returncode != 0:
        return f"rabbitmqctl status failed: {done.stderr.strip()[:300]}"
    return None


def start_broker(timeout: float = 120.0) -> float:
    """``rabbitmqctl start_app`` and wait until the app is running; the seconds it took."""
    began = time.monotonic()
    rabbitmqctl("start_app", timeout=timeout)
    rabbitmqctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout + 10)
    return time.monotonic() - began


def restart_broker(down: float = 1.0) -> dict[str, float]:
    """Stop the RabbitMQ app, keep it down ``down`` seconds, start it and wait until it
    runs again; always starts it, whatever happens. Seconds each step took."""
    began = time.monotonic()
    try:
        done = rabbitmqctl("stop_app", timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl stop_app failed: {done.stderr.strip()[:300]}")
        stopped = time.monotonic() - began
        time.sleep(down)
    finally:
        up = start_broker()
    return {"stop_s": stopped, "down_s": down, "start_s": up,
            "outage_s": time.monotonic() - began}  # fmt: skip


# -- the run -----------------------------------------------------------------------------------
@dataclass
class FaultResult:
    """What a fault run found."""

    events: int
    stored: int = 0
    distinct: int = 0
    missing: int = 0
    extra: int = 0
    findings_expected: int = 0
    findings_got: int = 0
    findings_equal: bool = False
    only_expected: list[Any] = field(default_factory=list)
    only_got: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    publish_retries: int = 0
    messages: int = 0  # intake messages (slices and the flush)
    published_at_restart: int = -1  # intake messages confirmed when the broker was stopped
    broker: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Rows stored more than once."""
        return self.stored - self.distinct

    @property
    def ok(self) -> bool:
        """Every event stored exactly once and the same findings."""
        return (self.stored == self.distinct == self.events and not self.missing
                and not self.extra and self.findings_equal)  # fmt: skip


async def publish_stream(
    transport: RabbitTransport, events: Batch, tag: str, on_publish: Callable[[int], None],
    pace: float = 0.0,
) -> int:  # fmt: skip
    """Publish the hourly slices and the flush (``pace`` seconds apart); a publish that
    fails or is not confirmed (the broker went away) is sent again after a pause until it
    is confirmed: the message id is a hash of its event ids, so a second copy is harmless.
    The retries made."""
    retries = 0
    origin = events.column("time")[0].as_py()
    parts = [(encode(p), batch_id(p)) for p in time_slices(events, timedelta(hours=1), origin)]
    messages = [(body, {"kind": "events"}, bid) for body, bid in parts]
    messages.append((b"", {"kind": "flush"}, f"flush.{tag}"))
    for k, (body, headers, mid) in enumerate(messages):
        delay = 0.5
        while True:
            try:
                await asyncio.wait_for(transport.publish("intake", body, headers, mid), 30)
                break
            except Exception:  # not confirmed (the broker went away): send again
                retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        on_publish(k + 1)
        if pace:
            await asyncio.sleep(pace)
    return retries


async def fault_run(
    pg_url: str,
    amqp: str,
    prefix: str,
    events: Batch,
    logs: Path,
    *,
    partitions: int = 4,
    workers: int = 3,
    kill: bool = True,
    restart: bool = False,
    pace: float = 0.0,
    timeout: float = 600.0,
    progress: Callable[[str], None] = lambda _: None,
) -> FaultResult:
    """Run the stream through ``workers`` worker processes with the faults asked for (fill
    in the store's side with `check`). With ``kill``, a quarter of the way through (by
    committed detect messages) one worker gets SIGKILL and another is started. With
    ``restart``, RabbitMQ is stopped and started again an eighth of the way through, while
    the stream is still being published (``pace`` seconds between slices) and consumed."""
    tag = "fault"
    want = expected_ids(events, partitions, tag)
    result = FaultResult(events.num_rows)
    procs = [spawn(pg_url, amqp, prefix, partitions, logs / f"w{i}.log") for i in range(workers)]
    transport = await RabbitTransport(amqp, topology_for(prefix, partitions, SKIP)).open()
    store = open_store(pg_url)
    published = [0]
    origin = events.column("time")[0].as_py()

    def committed() -> int:
        return len(done_ids(store) & want)

    began = time.monotonic()
    try:
        publisher = asyncio.create_task(
            publish_stream(transport, events, tag, lambda k: published.__setitem__(0, k), pace)
        )
        result.messages = len(list(time_slices(events, timedelta(hours=1), origin))) + 1
        if restart:
            await until(lambda: committed() >= len(want) // 8, timeout)
            result.published_at_restart = published[0]
            result.notes.append(f"broker stopped after {published[0]} of "
                                f"{result.messages} messages published, {committed()} of "
                                f"{len(want)} detect messages committed")  # fmt: skip
            progress(result.notes[-1])
            result.broker = await asyncio.to_thread(restart_broker)
            progress(f"RabbitMQ back: {result.broker}")
        if kill:
            await until(lambda: committed() >= len(want) // 4, timeout)
            procs[0].send_signal(signal.SIGKILL)  # mid-stream, with batches in flight
            result.notes.append(f"SIGKILL worker 0 at {committed()} of {len(want)} detect "
                                "messages committed; worker 3 started")  # fmt: skip
            progress(result.notes[-1])
            procs.append(spawn(pg_url, amqp, prefix, partitions, logs / f"w{workers}.log"))
        result.publish_retries = await publisher
        await until(lambda: done_ids(store) >= want, timeout)
        result.seconds = time.monotonic() - began
    finally:
        for p in procs:
            p.kill()
            p.wait()
        store.close()
        await transport.close()
    return result


def check(result: FaultResult, pg_url: str, events: Batch, expected: Findings) -> FaultResult:
    """Fill ``result`` from the store: counts, missing / extra ids, findings vs ``expected``."""
    store = open_store(pg_url)
    try:
        counts = store.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
        row = counts.to_pylist()[0]
        result.stored, result.distinct = int(row["n"]), int(row["d"])
        stored_ids = set(store.query("SELECT event_id FROM events").column(0).to_pylist())
        got = {(f.span_id, int(f.severity)) for f in load_findings(store)}
    finally:
        store.close()
    ids = set(events.column("event_id").to_pylist())
    result.missing = len(ids - stored_ids)
    result.extra = len(stored_ids - ids)
    result.findings_expected, result.findings_got = len(expected), len(got)
    result.findings_equal = got == expected
    result.only_expected = sorted(expected - got)[:5]
    result.only_got = sorted(got - expected)[:5]
    return result


async def until(check_: Callable[[], bool], timeout: float) -> None:
    """Poll ``check_`` every 0.5 s; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check_):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pipeline did not finish in {timeout:.0f} s")
        await asyncio.sleep(0.5)


def done_ids(store: Any) -> set[str]:
    """The message ids the detect stage has committed."""
    return set(store.query("SELECT message_id FROM pipeline_done").column(0).to_pylist())
