"""Intake through the distributed pipeline (``kestrel serve --broker … --db postgresql://…``):
the API publishes each request's events to the pipeline's intake queue instead of writing
the store itself; ``kestrel worker`` processes store them and run the detectors, and the
API reads findings and entities from the same PostgreSQL store.

What a sender is told:

* 200 only after RabbitMQ has confirmed every message of the request (publisher
  confirms; a message the broker cannot route is returned and counts as not confirmed).
  ``stored`` counts the events handed to the pipeline that the store did not have yet;
  ``duplicates`` those it had (or that appear twice in the request). The worker's append
  is idempotent on ``event_id``, so a batch sent twice is stored once.
* 503 with the reason when the broker is unreachable, refuses the message or does not
  confirm in time: nothing is acknowledged, and sending again is safe (the message id is
  a hash of the event ids, so a batch the broker did get after all is a no-op the second
  time).

`BrokerIntake` has the group writer's interface (`submit`, `pending`, `close`), so the
API's request path is the same for both; `kestrel.api.deps` picks one by
``ApiSettings.broker``. Publishing runs on one event loop in a thread of its own (the
request handlers are threads); concurrent requests publish concurrently on its channel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from kestrel.api.intake import IntakeError
from kestrel.events import Batch
from kestrel.pipeline.distributed import publish_events
from kestrel.pipeline.operations import topology_for
from kestrel.pipeline.transport import RabbitTransport
from kestrel.store import AppendResult, Store, time_span
from kestrel.store.base import unique_by_event_id

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IntakeWriter(Protocol):
    """What the intake route hands a request's batch to (the local group writer, or this)."""

    def submit(self, batch: Batch, rejected: pa.Table | None) -> AppendResult:
        """Take ``batch`` (and the rejected records); returns once it is safe to ack."""
        ...

    def pending(self) -> int:
        """Batches waiting (the queue-depth gauge)."""
        ...

    def close(self) -> None:
        """Finish and release resources."""
        ...


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where intake goes: the broker URL and the topology the workers use (they must agree
    on prefix, partitions and skipped detectors, which define the queue names)."""

    url: str
    prefix: str = "kestrel"
    partitions: int = 8
    skip: tuple[str, ...] = ()
    confirm_timeout: float = 10.0  # seconds to wait for the broker before answering 503
    connect_timeout: float = 3.0


class BrokerIntake:
    """`IntakeWriter` that publishes to the pipeline's intake queue (confirmed)."""

    def __init__(self, target: BrokerTarget, store: Store, lock: threading.RLock) -> None:
        self.target = target
        self._store = store
        self._lock = lock
        self._transport = RabbitTransport(
            target.url, topology_for(target.prefix, target.partitions, target.skip)
        )
        self._transport.connect_timeout = target.connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kestrel-broker",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        self._inflight = 0
        self._count = threading.Lock()
        try:  # connect now if we can; if not, requests answer 503 until the broker is back
            self._call(self._transport.open(timeout=target.connect_timeout))
        except IntakeError as exc:
            log.warning("broker not reachable at start: %s", exc.detail)

    def submit(self, batch: Batch, rejected: pa.Table | None) -> AppendResult:
        """Publish the events the store does not have yet, one message per hour of event
        time; returns once the broker confirmed them all (else `IntakeError` 503). The
        rejected records are written to the store (they never reach a worker)."""
        with self._count:
            self._inflight += 1
        try:
            fresh, duplicates = self._fresh(batch)
            self._call(self._publish(fresh))
            if rejected is not None and rejected.num_rows:
                with self._lock:
                    self._store.append_rejected(rejected)
        finally:
            with self._count:
                self._inflight -= 1
        return AppendResult(fresh.num_rows, duplicates)

    def pending(self) -> int:
        """Requests waiting for the broker's confirm."""
        return self._inflight

    def close(self) -> None:
        """Close the connection and stop the publishing thread."""
        with contextlib.suppress(IntakeError):
            self._call(self._transport.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def _fresh(self, batch: Batch) -> tuple[Batch, int]:
        """The rows whose event id neither the store nor an earlier row has; the others'
        count."""
        if batch.num_rows == 0:
            return batch, 0
        ids = batch.column("event_id")
        with self._lock:
            known = self._store.known_event_ids(ids, time_span(batch.column("time")))
        unseen = batch.filter(pc.invert(pc.is_in(ids, known))) if len(known) else batch
        fresh = unique_by_event_id(unseen)  # repeated within the request: the first
        return fresh, batch.num_rows - fresh.num_rows

    async def _publish(self, batch: Batch) -> None:
        if batch.num_rows == 0:
            return
        first: datetime = pc.min(batch.column("time")).as_py()
        origin = _EPOCH + (first - _EPOCH) // timedelta(hours=1) * timedelta(hours=1)
        await publish_events(self._transport, batch, origin, timedelta(hours=1))

    def _call(self, coro: object) -> None:
        """Run ``coro`` on the publishing loop and wait; any failure is a 503."""
        assert asyncio.iscoroutine(coro)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            future.result(self.target.confirm_timeout + self.target.connect_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise IntakeError(503, _unavailable("no confirm in time")) from None
        except Exception as exc:  # broker gone, message returned or nacked: not confirmed
            raise IntakeError(503, _unavailable(f"{type(exc).__name__}: {exc}")) from exc


def _unavailable(reason: str) -> str:
    return (f"event broker unavailable ({reason}); nothing was accepted from this request, "
            "send it again")  # fmt: skip
