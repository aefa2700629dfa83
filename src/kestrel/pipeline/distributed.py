"""The distributed runner: the embedded runner's stages over RabbitMQ, PostgreSQL as the
shared store, as many workers as wanted, none of them special.

Stages and their queues (`kestrel.pipeline.transport` has the topology):

* ``intake`` — one Arrow batch per message (cut at the embedded runner's time slices by
  `publish_events`). The worker appends it to the store (COPY, idempotent on event_id),
  splits it by entity partition and publishes each part to ``detect.<n>``, then acks.
* ``detect.<n>`` — one partition's events of one slice. The worker loads the detectors'
  state of partition n from PostgreSQL, runs them, and commits in ONE transaction the
  merged findings, the new state and a "done" row for the message id; then it acks.

Exactly once, without a home-made protocol: every queue has a single active consumer, so
each partition's batches run in order on one worker at a time and a dead worker's queues
pass to another (which reads the state the dead one last committed). A message delivered
again after a crash between commit and ack finds its "done" row and is only acked; a batch
stored twice is a no-op (unique event_id); the detect messages an intake redelivery
republishes carry the same ids. Batches that fail on their content go to the dead-letter
queue with the reason; `replay_dead_letters` sends them back to their route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect import Detector
from kestrel.events import Batch
from kestrel.findings import Finding
from kestrel.pipeline.codec import decode, encode, sort_events, split_by_partition, time_slices
from kestrel.pipeline.persist import save_findings
from kestrel.pipeline.transport import (
    Delivery,
    Poison,
    RabbitTransport,
    Stale,
    Topology,
    Transport,
)
from kestrel.store.findings import StateTable
from kestrel.store.postgres import PostgresStore

log = logging.getLogger(__name__)
DetectorFactory = Callable[[], Mapping[str, Detector]]
Outgoing = list[tuple[str, bytes, dict[str, Any], str]]


@dataclass(frozen=True, slots=True)
class StageResult:
    """What handling one message did (for logs and tests)."""

    route: str
    events: int
    findings: int
    skipped: bool = False


class Worker:
    """Handles deliveries of any stage; one at a time, because the stage's store work and
    its acks must follow the queue's order."""

    def __init__(
        self, store_url: str, transport: Transport, topology: Topology, detectors: DetectorFactory
    ) -> None:
        self.store_url = store_url
        self.store = PostgresStore(store_url)
        self.transport = transport
        self.topology = topology
        self._prototypes = dict(detectors())
        self._group = {name: group_of(det) for name, det in self._prototypes.items()}
        self._lock = asyncio.Lock()
        self.results: list[StageResult] = []

    async def handle(self, delivery: Delivery) -> None:
        """Run the stage for ``delivery``; returns once its output is committed and its
        own publishes are confirmed, so the transport may ack."""
        async with self._lock:
            try:
                result, outgoing = await asyncio.to_thread(self._run, delivery)
            except psycopg.OperationalError:
                self.store = PostgresStore(self.store_url)  # the database went away: reconnect
                raise
            for route, body, headers, message_id in outgoing:
                if not delivery.alive():  # the broker went away: the delivery comes again,
                    raise Stale(delivery.message_id)  # and must not be overtaken by a later one
                await self.transport.publish(route, body, headers, message_id)
            self.results.append(result)

    def _run(self, d: Delivery) -> tuple[StageResult, Outgoing]:
        if d.route == "intake":
            return self._intake(d)
        return self._detect(d), []

    # -- intake ----------------------------------------------------------------------------
    def _intake(self, d: Delivery) -> tuple[StageResult, Outgoing]:
        if d.headers.get("kind") == "flush":
            ends = [(r, b"", dict(d.headers), f"{d.message_id}.{r}") for r in self._detect_routes()]
            return StageResult(d.route, 0, 0), ends
        try:
            batch = decode(d.body)
        except (pa.ArrowException, ValueError) as exc:
            raise Poison(f"cannot decode batch: {exc}") from exc
        self.store.append(batch)
        out: Outgoing = []
        for group in self.topology.groups:
            parts = split_by_partition(batch, self.topology.partitions, tuple(group.split("+")))
            for p, part in sorted(parts.items()):
                route = f"detect.{group}.{p}"
                out.append((route, encode(part), {**d.headers, "kind": "events"},
                            f"{d.message_id}.{route}"))  # fmt: skip
        return StageResult(d.route, batch.num_rows, 0), out

    def _detect_routes(self) -> list[str]:
        return [r for r in self.topology.routes if r.startswith("detect.")]

    # -- detect ----------------------------------------------------------------------------
    def _detect(self, d: Delivery) -> StageResult:
        flush = d.headers.get("kind") == "flush"
        batch = None if flush else _decode_or_poison(d.body)
        with self.store.transaction():
            if self._done(d.message_id):
                return StageResult(d.route, 0, 0, skipped=True)
            states = StateTable(self.store)
            detectors = self._detectors(states, d.route)
            found = _run_detectors(detectors, batch)
            save_findings(self.store, found)
            now = datetime.now(UTC)
            for name, det in detectors.items():
                state = getattr(det, "state", None)
                if callable(state):
                    states.save(f"{name}@{d.route}", state(), now)
            self._mark_done(d, batch, now)
        return StageResult(d.route, 0 if batch is None else batch.num_rows, len(found))

    def _detectors(self, states: StateTable, route: str) -> dict[str, Detector]:
        """Fresh detectors with the partition's committed state (another worker may have
        advanced it since this one last held the partition)."""
        out: dict[str, Detector] = {}
        group = route.split(".")[1]
        for name, proto in self._prototypes.items():
            if self._group[name] != group:
                continue
            clone = getattr(proto, "clone", None)
            det: Detector = clone() if callable(clone) else proto
            load = getattr(det, "load_state", None)
            tables = states.load(f"{name}@{route}")
            if tables and callable(load):
                load(tables)
            out[name] = det
        return out

    def _done(self, message_id: str) -> bool:
        rows = self.store.query("SELECT 1 FROM pipeline_done WHERE message_id = ?", [message_id])
        return bool(rows.num_rows)

    def _mark_done(self, d: Delivery, batch: Batch | None, now: datetime) -> None:
        n = 0 if batch is None else batch.num_rows
        last = None if batch is None else pc.max(batch.column("time")).as_py()
        self.store.execute(
            "INSERT INTO pipeline_done VALUES (?, ?, ?, ?)", [d.message_id, d.route, n, now]
        )
        self.store.execute(
            "INSERT INTO pipeline_progress VALUES (?, ?, 1, ?, ?) ON CONFLICT (route) DO UPDATE "
            "SET last_event = greatest(pipeline_progress.last_event, excluded.last_event), "
            "messages = pipeline_progress.messages + 1, "
            "events = pipeline_progress.events + excluded.events, updated = excluded.updated",
            [d.route, last, n, now],
        )

    def close(self) -> None:
        """Release the store connection."""
        self.store.close()


def _decode_or_poison(body: bytes) -> Batch:
    try:
        return sort_events(decode(body))
    except (pa.ArrowException, ValueError) as exc:
        raise Poison(f"cannot decode batch: {exc}") from exc


def _run_detectors(detectors: Mapping[str, Detector], batch: Batch | None) -> list[Finding]:
    """The detectors over ``batch`` (or their ``flush`` at the end of a stream). An exception
    here comes from the batch's content meeting a detector: the batch is poison."""
    found: list[Finding] = []
    for name, det in detectors.items():
        try:
            if batch is not None:
                found.extend(det.detect(batch))
            elif callable(flush := getattr(det, "flush", None)):
                found.extend(flush())
        except Exception as exc:
            raise Poison(f"detector {name}: {type(exc).__name__}: {exc}") from exc
    return found


def group_of(detector: object) -> str:
    """The partition group of a detector: the columns its state is keyed by (its
    ``partition_key`` attribute, else ``entity_id``), joined by ``+``."""
    key: tuple[str, ...] = getattr(detector, "partition_key", ("entity_id",))
    return "+".join(key)


def partition_groups(detectors: Iterable[object]) -> tuple[str, ...]:
    """The groups the topology needs for these detectors (instances or classes)."""
    return tuple(sorted({group_of(d) for d in detectors}))


def stage_routes(topology: Topology, stages: Iterable[str]) -> list[str]:
    """The routes a worker consumes for the named stages (``intake``, ``detect``)."""
    wanted = set(stages)
    return [r for r in topology.routes if r.split(".")[0] in wanted]


async def run_worker(
    broker: str,
    db: str,
    topology: Topology,
    detectors: DetectorFactory,
    stages: Iterable[str] = ("intake", "detect"),
) -> None:
    """Consume the stages' queues until cancelled (``kestrel worker``)."""
    transport = await RabbitTransport(broker, topology).open(wait=float("inf"))
    worker = Worker(db, transport, topology, detectors)
    try:
        await transport.consume(stage_routes(topology, stages), worker.handle)
    finally:
        worker.close()
        await transport.close()


# -- feeding the pipeline -------------------------------------------------------------------
async def publish_events(
    transport: Transport,
    batch: Batch,
    origin: datetime,
    slice_: timedelta = timedelta(hours=1),
) -> int:
    """Publish ``batch`` to intake, one message per time slice (aligned on ``origin``, as
    the embedded runner aligns on the first event); the messages published. The message id
    is a hash of the event ids, so publishing the same events again is harmless."""
    n = 0
    for part in time_slices(batch, slice_, origin):
        await transport.publish("intake", encode(part), {"kind": "events"}, batch_id(part))
        n += 1
    return n


async def publish_flush(transport: Transport, tag: str) -> None:
    """Tell every partition that the stream ended: windowed detectors report what is open
    (the embedded runner's ``flush`` after its last slice)."""
    await transport.publish("intake", b"", {"kind": "flush"}, f"flush.{tag}")


def batch_id(batch: Batch) -> str:
    """A batch's message id: BLAKE2b over its event ids."""
    ids = "\n".join(batch.column("event_id").to_pylist())
    return blake2b(ids.encode(), digest_size=16).hexdigest()
