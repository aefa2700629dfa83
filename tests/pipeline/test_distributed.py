"""The distributed runner against the real RabbitMQ and PostgreSQL (marker ``services``).

* poison: a batch that cannot be decoded and one a detector fails on go to the dead-letter
  queue with their reasons while the rest flows; after the fix, replay completes the second.
* fault: three worker processes, one killed with SIGKILL mid-stream and another started;
  every event is stored exactly once and the findings equal one embedded run's (same
  spans, i.e. detector, entity, first / last seen and signals, and same severities).
* broker restart: RabbitMQ's app is stopped and started (``rabbitmqctl``, a few seconds
  down) while the stream is published and consumed; the publisher sends unconfirmed
  batches again, the workers reconnect; same checks as the fault test. Skips (with the
  reason) where rabbitmqctl is missing or not permitted, except under ``CI=true``.
* the stream and both runs are in `tests.pipeline.distributed_fault`, which
  ``bench.distributed --fault`` runs over 1,000,000 events.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar

import pyarrow as pa
import pytest
from tests.pipeline import distributed_fault as fault
from tests.services import unavailable

from kestrel.events import Batch, make_batch
from kestrel.findings import Finding
from kestrel.pipeline.codec import split_by_partition
from kestrel.pipeline.distributed import Worker, batch_id, publish_events
from kestrel.pipeline.operations import list_dead_letters, replay_dead_letters
from kestrel.pipeline.transport import RabbitTransport, Topology
from kestrel.store import open_store

pytestmark = pytest.mark.services
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Exploding:
    """A detector with a bug that entity ``poison-host`` triggers (until it is fixed)."""

    name: ClassVar[str] = "exploding"
    broken: ClassVar[bool] = True

    def detect(self, batch: Batch) -> list[Finding]:
        if self.broken and "poison-host" in batch.column("entity_id").to_pylist():
            raise ValueError("cannot score poison-host")
        return []


def _events(prefix: str, entity: str, n: int = 5) -> Batch:
    return make_batch({
        "event_id": [f"{prefix}{i}" for i in range(n)],
        "time": pa.array([T0.replace(minute=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "class": ["process"] * n, "source": ["agent"] * n,
        "entity_id": [entity] * n, "raw": ["{}"] * n,
    }, n)  # fmt: skip


async def _until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if await found if inspect.isawaitable(found) else found:
            return
        assert time.monotonic() < deadline, "timed out waiting for the pipeline"
        await asyncio.sleep(0.2)


def _done(store, message_id: str) -> bool:
    rows = store.query("SELECT 1 FROM pipeline_done WHERE message_id = ?", [message_id])
    return bool(rows.num_rows)


def test_poison_batches_dead_letter_and_replay(pg_url, broker):
    asyncio.run(_poison(pg_url, *broker))


async def _poison(pg_url: str, amqp: str, prefix: str) -> None:
    topology = Topology(prefix=prefix, partitions=2)
    transport = await RabbitTransport(amqp, topology).open()
    worker = Worker(pg_url, transport, topology, lambda: {"exploding": Exploding()})
    consuming = asyncio.create_task(transport.consume(topology.routes, worker.handle))
    store = open_store(pg_url)
    good, bad = _events("g", "good-host"), _events("p", "poison-host")

    async def dead_ids() -> list[str]:
        return sorted(d["message_id"] for d in await list_dead_letters(transport))

    try:
        await publish_events(transport, good, T0)
        await transport.publish("intake", b"not arrow at all", {"kind": "events"}, "garbage")
        await publish_events(transport, bad, T0)
        await _until(lambda: _done(store, f"{batch_id(good)}.{_route(good)}"))
        await _until(lambda: _count(dead_ids(), 2))
        dead = {d["message_id"]: d for d in await list_dead_letters(transport)}
        assert dead["garbage"]["route"] == "intake"
        assert dead["garbage"]["reason"].startswith("cannot decode batch")
        poisoned = dead[f"{batch_id(bad)}.{_route(bad)}"]
        assert poisoned["reason"] == "detector exploding: ValueError: cannot score poison-host"
        assert store.stats().total == 10  # both batches stored; only detection failed
        Exploding.broken = False  # the fix
        assert await replay_dead_letters(transport) == 2
        await _until(lambda: _done(store, f"{batch_id(bad)}.{_route(bad)}"))
        await _until(lambda: _count(dead_ids(), 1))  # the undecodable one stays dead
    finally:
        Exploding.broken = True
        consuming.cancel()
        store.close()
        worker.close()
        await transport.close()


def _route(batch: Batch) -> str:
    (p,) = split_by_partition(batch, 2)
    return f"detect.entity_id.{p}"


async def _count(ids: Awaitable[list[str]], n: int) -> bool:
    return len(await ids) == n


# -- the fault and broker-restart tests ------------------------------------------------------
HOURS = int(os.environ.get("KESTREL_FAULT_HOURS", "24"))  # 24 h ≈ 30,000 events


@pytest.fixture(scope="module")
def stream_and_findings() -> tuple[Batch, set[tuple[str, int]]]:
    """The generated stream and the findings of one embedded run over it."""
    return fault.reference(HOURS)


def _assert_exactly_once(result: fault.FaultResult) -> None:
    # span_id: detector, entity, first/last seen and signals. `finding_id` is the stable key
    # of a finding's first stored part, so a finding that grows across commits (the worker
    # commits per slice, one embedded run once) keeps an earlier id by design.
    assert (result.stored, result.distinct) == (result.events, result.events)
    assert (result.missing, result.extra) == (0, 0)
    assert result.findings_expected > 0
    assert (result.only_expected, result.only_got) == ([], [])
    assert result.findings_equal


@pytest.mark.slow
def test_fault_sigkill_mid_stream_loses_and_doubles_nothing(
    pg_url, broker, tmp_path, stream_and_findings
):
    amqp, prefix = broker
    events, expected = stream_and_findings
    result = asyncio.run(fault.fault_run(pg_url, amqp, prefix, events, tmp_path, timeout=400))
    _assert_exactly_once(fault.check(result, pg_url, events, expected))


@pytest.mark.slow
@pytest.mark.serial  # stops the machine's RabbitMQ: no other test may use it meanwhile
def test_broker_restart_mid_stream_loses_nothing(pg_url, broker, tmp_path, stream_and_findings):
    """RabbitMQ (the app, via rabbitmqctl stop_app / start_app) goes away for a few seconds
    while the stream is published and consumed; the publisher sends unconfirmed batches
    again, the workers reconnect, and nothing is lost or doubled. The broker is always
    started again, whatever the test does."""
    if reason := fault.broker_controllable():
        unavailable(f"broker restart test needs a local, controllable RabbitMQ: {reason}")
    amqp, prefix = broker
    events, expected = stream_and_findings
    try:
        result = asyncio.run(fault.fault_run(pg_url, amqp, prefix, events, tmp_path,
                                             workers=2, kill=False, restart=True,
                                             pace=1.0, timeout=400))  # fmt: skip
    finally:
        fault.start_broker()  # a no-op when it runs; never leave it stopped for later tests
    assert result.broker["outage_s"] < 60, result.broker
    assert 0 < result.published_at_restart < result.messages  # while still publishing
    assert result.publish_retries > 0  # the publisher met the outage and sent again
    _assert_exactly_once(fault.check(result, pg_url, events, expected))
