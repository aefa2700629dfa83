"""How batches travel between the stages of the distributed runner: a small `Transport`
interface (publish a batch, consume with ack, dead-letter) and its RabbitMQ implementation.

Why an interface: the stages only say "this batch goes to route R" and "this delivery is
done / is poison"; a Kafka transport (partitions keyed by entity) would fill the same three
verbs. Only the RabbitMQ one exists and is tested.

RabbitMQ topology, all durable (names start with the topology's ``prefix``):

* exchange ``<prefix>.stages`` (direct) → quorum queues ``<prefix>.intake`` and
  ``<prefix>.detect.<group>.<n>``: one per partition of each partition key (``entity_id``
  for most detectors; a detector whose state is keyed otherwise names its columns in a
  ``partition_key`` class attribute and gets its own group). Every queue has a single active
  consumer: the broker keeps each queue's order, and gives a queue to another worker when
  its consumer dies (the new one loads the partition's state from PostgreSQL).
* ``x-delivery-limit`` bounds redelivery: a batch that crashes its worker again and again
  is dead-lettered by the broker (reason ``delivery_limit`` in ``x-death``).
* exchange ``<prefix>.dead`` (fanout) → quorum queue ``<prefix>.dead``: poison batches, put
  there by the worker with ``x-kestrel-reason`` and ``x-kestrel-route`` headers.

Publishes wait for the broker's confirm; a delivery is acked only after its handler
returned, i.e. after the stage's output is committed and its own publishes confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

log = logging.getLogger(__name__)
RECONNECT_S = 1.0  # pause before reconnecting after the broker went away


class Stale(Exception):  # noqa: N818 - a state of a delivery, not an error of ours
    """The delivery came on a connection that has closed since (the broker went away): it
    will be delivered again, so its stage must not publish on its behalf (a later batch's
    output could overtake it) and it cannot be acked."""


class Poison(Exception):  # noqa: N818 - a kind of batch, not an error of ours
    """The batch itself is bad (undecodable, or a stage fails on its content): retrying will
    not help, so it goes to the dead-letter queue with this exception's text as reason."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to a stage."""

    route: str
    body: bytes
    headers: dict[str, Any]
    message_id: str
    redelivered: bool
    # Whether the channel it came on is still open (acking is still possible); a delivery
    # made before a broker restart is dead and will come again.
    alive: Callable[[], bool] = lambda: True


Handler = Callable[[Delivery], Awaitable[None]]


class Transport(Protocol):
    """Publish batches, consume them with ack, dead-letter the poison ones."""

    async def publish(
        self, route: str, body: bytes, headers: Mapping[str, Any], message_id: str
    ) -> None:
        """Send ``body`` to ``route``; returns once the broker has it (confirmed)."""
        ...

    async def consume(self, routes: Sequence[str], handler: Handler) -> None:
        """Deliver messages of ``routes`` to ``handler`` until cancelled: ack when it
        returns, dead-letter on `Poison`, redeliver (bounded) on any other error."""
        ...


@dataclass
class Topology:
    """The names of the exchanges and queues, and the queues' policy."""

    prefix: str = "kestrel"
    partitions: int = 8
    groups: tuple[str, ...] = ("entity_id",)
    delivery_limit: int = 5
    prefetch: int = 2
    routes: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.routes = ["intake"] + [
            f"detect.{g}.{i}" for g in self.groups for i in range(self.partitions)
        ]

    def queue(self, route: str) -> str:
        """The queue name of a route."""
        return f"{self.prefix}.{route}"

    @property
    def stages(self) -> str:
        """The direct exchange every stage queue is bound to."""
        return f"{self.prefix}.stages"

    @property
    def dead(self) -> str:
        """The dead-letter exchange and queue."""
        return f"{self.prefix}.dead"

    def arguments(self) -> dict[str, Any]:
        """Queue arguments of the stage queues."""
        return {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead,
        }


class RabbitTransport:
    """`Transport` over RabbitMQ (aio-pika): see the module docstring for the topology.

    Reconnects explicitly rather than through aio-pika's robust connection (which, after a
    broker restart here, came back without its consumers): `consume` opens a fresh
    connection whenever the last one closes and subscribes again; `publish` on a closed
    connection tries once to open a new one and raises if it cannot (the caller retries:
    the message ids make a second copy harmless). Deliveries of a closed connection are
    `Delivery.alive` no more: the broker gives them to a consumer again.
    """

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self._conn: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self.connections = 0  # how many times a connection was opened (1 + reconnects)
        self.connect_timeout = 10.0

    async def open(self, wait: float = 0.0, timeout: float | None = None) -> RabbitTransport:
        """Connect and declare the topology; while the broker is unreachable, try again for
        up to ``wait`` seconds (a worker started before its broker waits for it; a
        command fails at once)."""
        await self._connect(wait, timeout)
        return self

    def _open_channel(self) -> AbstractChannel | None:
        if self._conn is None or self._conn.is_closed:
            return None
        if self._channel is None or self._channel.is_closed:
            return None
        return self._channel

    async def _connect(self, wait: float, timeout: float | None = None) -> AbstractChannel:
        async with self._lock:
            if (channel := self._open_channel()) is not None:
                return channel  # another task reconnected meanwhile
            deadline = time.monotonic() + wait
            delay = 0.5
            while True:
                try:
                    conn = await aio_pika.connect(self.url, timeout=timeout or self.connect_timeout)
                    # on_return_raises: a message the broker cannot route is not confirmed
                    channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
                    await channel.set_qos(prefetch_count=self.topology.prefetch)
                    await declare(channel, self.topology)
                    break
                except (TimeoutError, OSError, AMQPError, ChannelInvalidStateError) as exc:
                    if self._closing or time.monotonic() + delay > deadline:
                        raise
                    log.warning("broker unreachable (%s); trying again in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if self.connections:
                log.info("reconnected to the broker")
            self._conn, self._channel = conn, channel
            self.connections += 1
            return channel

    async def close(self) -> None:
        """Close the connection (unacked deliveries go back to their queues)."""
        self._closing = True
        if self._conn is not None and not self._conn.is_closed:
            await self._conn.close()

    @property
    def channel(self) -> AbstractChannel:
        """The open channel (after `open`)."""
        assert self._channel is not None, "call open() first"
        return self._channel

    async def _ready(self) -> AbstractChannel:
        return self._open_channel() or await self._connect(0.0)

    async def publish(
        self, route: str, body: bytes, headers: Mapping[str, Any], message_id: str
    ) -> None:
        channel = await self._ready()
        exchange = await channel.get_exchange(self.topology.stages, ensure=False)
        await exchange.publish(_message(body, headers, message_id), routing_key=route)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Put ``delivery`` on the dead-letter queue with ``reason`` (confirmed)."""
        headers = {**delivery.headers, "x-kestrel-reason": reason[:2000],
                   "x-kestrel-route": delivery.route}  # fmt: skip
        channel = await self._ready()
        exchange = await channel.get_exchange(self.topology.dead, ensure=False)
        await exchange.publish(_message(delivery.body, headers, delivery.message_id), "")

    async def consume(self, routes: Sequence[str], handler: Handler) -> None:
        while True:  # until cancelled; a new connection after each loss of the last one
            channel = await self._connect(float("inf"))
            assert self._conn is not None
            lost = asyncio.Event()
            self._conn.close_callbacks.add(_setter(lost))
            try:
                for route in routes:
                    queue = await channel.get_queue(self.topology.queue(route), ensure=False)
                    await queue.consume(self._callback(route, handler))
            except (AMQPError, ChannelInvalidStateError) as exc:
                log.warning("subscribing failed (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            await lost.wait()
            log.warning("lost the broker connection; reconnecting")
            await asyncio.sleep(RECONNECT_S)

    def _callback(
        self, route: str, handler: Handler
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(msg: AbstractIncomingMessage) -> None:
            delivery = Delivery(route, msg.body, dict(msg.headers or {}),
                                msg.message_id or "", msg.redelivered or False,
                                lambda: _alive(msg))  # fmt: skip
            try:
                if not delivery.alive():
                    raise Stale(delivery.message_id)
                await handler(delivery)
            except Stale:
                log.info("%s from %s came before a reconnect; it will come again",
                         delivery.message_id, route)  # fmt: skip
                return
            except Poison as exc:
                log.warning("dead-lettering %s from %s: %s", delivery.message_id, route, exc)
                await self.dead_letter(delivery, str(exc))
            except Exception:
                log.exception("batch %s from %s failed; redelivering", delivery.message_id, route)
                await asyncio.sleep(1.0)
                await _settle(msg, ack=False)
                return
            await _settle(msg, ack=True)

        return on_message


def _setter(event: asyncio.Event) -> Callable[..., None]:
    return lambda *_: event.set()


def _alive(msg: AbstractIncomingMessage) -> bool:
    try:
        return not msg.channel.is_closed
    except ChannelInvalidStateError:
        return False


async def _settle(msg: AbstractIncomingMessage, ack: bool) -> None:
    """Ack (or nack with requeue); a delivery whose channel has closed since cannot be
    settled, and needs not be: the broker delivers it again."""
    try:
        if ack:
            await msg.ack()
        else:
            await msg.nack(requeue=True)
    except (ChannelInvalidStateError, AMQPError) as exc:
        log.info("cannot settle %s (%s); the broker will deliver it again", msg.message_id, exc)


async def declare(channel: AbstractChannel, topology: Topology) -> None:
    """Declare the exchanges and queues (idempotent: every worker does it at start)."""
    stages = await channel.declare_exchange(
        topology.stages, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(topology.dead, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(
        topology.dead, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead)
    for route in topology.routes:
        queue = await channel.declare_queue(
            topology.queue(route), durable=True, arguments=topology.arguments()
        )
        await queue.bind(stages, routing_key=route)


def _message(body: bytes, headers: Mapping[str, Any], message_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=dict(headers),
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        content_type="application/vnd.apache.arrow.stream",
    )
