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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

log = logging.getLogger(__name__)


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
    """`Transport` over RabbitMQ (aio-pika): see the module docstring for the topology."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def open(self) -> RabbitTransport:
        """Connect (reconnecting by itself after a broker restart) and declare the topology."""
        self._conn = await aio_pika.connect_robust(self.url)
        self._channel = await self._conn.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self.topology.prefetch)
        await declare(self._channel, self.topology)
        return self

    async def close(self) -> None:
        """Close the connection (unacked deliveries go back to their queues)."""
        if self._conn is not None:
            await self._conn.close()

    @property
    def channel(self) -> AbstractChannel:
        """The open channel (after `open`)."""
        assert self._channel is not None, "call open() first"
        return self._channel

    async def publish(
        self, route: str, body: bytes, headers: Mapping[str, Any], message_id: str
    ) -> None:
        exchange = await self.channel.get_exchange(self.topology.stages, ensure=False)
        await exchange.publish(_message(body, headers, message_id), routing_key=route)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Put ``delivery`` on the dead-letter queue with ``reason`` (confirmed)."""
        headers = {**delivery.headers, "x-kestrel-reason": reason[:2000],
                   "x-kestrel-route": delivery.route}  # fmt: skip
        exchange = await self.channel.get_exchange(self.topology.dead, ensure=False)
        await exchange.publish(_message(delivery.body, headers, delivery.message_id), "")

    async def consume(self, routes: Sequence[str], handler: Handler) -> None:
        for route in routes:
            queue = await self.channel.get_queue(self.topology.queue(route), ensure=False)
            await queue.consume(self._callback(route, handler))
        await asyncio.Future()  # until cancelled

    def _callback(
        self, route: str, handler: Handler
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(msg: AbstractIncomingMessage) -> None:
            delivery = Delivery(route, msg.body, dict(msg.headers or {}),
                                msg.message_id or "", msg.redelivered or False)  # fmt: skip
            try:
                await handler(delivery)
            except Poison as exc:
                log.warning("dead-lettering %s from %s: %s", delivery.message_id, route, exc)
                await self.dead_letter(delivery, str(exc))
            except Exception:
                log.exception("batch %s from %s failed; redelivering", delivery.message_id, route)
                await asyncio.sleep(1.0)
                await msg.nack(requeue=True)
                return
            await msg.ack()

        return on_message


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
