"""Operating the distributed runner: queue depths, consumers, lag, dead letters, replay.

`pipeline_status` reads the broker (a passive declare per queue gives its depth and
consumer count) and the store (how far each route has got, `pipeline_progress`), so lag is
"newest stored event minus newest event this route committed". Dead letters are browsed by
fetching without ack and closing the channel, which puts them back untouched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from kestrel.pipeline.transport import RabbitTransport, Topology
from kestrel.store import Store


async def pipeline_status(transport: RabbitTransport, store: Store) -> dict[str, Any]:
    """Per route: messages waiting, consumers, last event committed, lag; dead letters."""
    progress = {r["route"]: r for r in store.query("SELECT * FROM pipeline_progress").to_pylist()}
    newest: datetime | None = store.query("SELECT max(time) AS t FROM events").to_pylist()[0]["t"]
    routes = []
    for route in transport.topology.routes:
        depth, consumers = await _depth(transport, transport.topology.queue(route))
        done = progress.get(route, {})
        last = done.get("last_event")
        lag = (newest - last).total_seconds() if newest and last else None
        routes.append({"route": route, "messages": depth, "consumers": consumers,
                       "committed": done.get("messages", 0), "last_event": last,
                       "lag_seconds": lag})  # fmt: skip
    dead, _ = await _depth(transport, transport.topology.dead)
    return {"routes": routes, "dead_letters": dead, "newest_event": newest}


async def _depth(transport: RabbitTransport, queue: str) -> tuple[int, int]:
    q = await transport.channel.declare_queue(queue, passive=True)
    res = q.declaration_result
    return int(res.message_count or 0), int(res.consumer_count or 0)


async def list_dead_letters(transport: RabbitTransport, limit: int = 100) -> list[dict[str, Any]]:
    """The dead letters (oldest first) with their route and reason; left in the queue."""
    channel = await transport._conn.channel()  # type: ignore[union-attr]
    try:
        queue = await channel.get_queue(transport.topology.dead, ensure=False)
        out = []
        for _ in range(limit):
            msg = await queue.get(no_ack=False, fail=False)
            if msg is None:
                break
            out.append(describe(msg))
        return out
    finally:
        await channel.close()  # unacked: every message goes back to the queue


def describe(msg: AbstractIncomingMessage) -> dict[str, Any]:
    """A dead letter's id, route, reason and size."""
    headers = dict(msg.headers or {})
    return {"message_id": msg.message_id, "route": route_of(headers),
            "reason": reason_of(headers), "bytes": len(msg.body)}  # fmt: skip


def route_of(headers: dict[str, Any]) -> str:
    """Where a dead letter came from: our header, or the broker's ``x-death`` record."""
    if "x-kestrel-route" in headers:
        return str(headers["x-kestrel-route"])
    death = (headers.get("x-death") or [{}])[0]
    keys = death.get("routing-keys") or [""]
    return str(keys[0])


def reason_of(headers: dict[str, Any]) -> str:
    """Why it was dead-lettered: the worker's reason, else the broker's (delivery_limit)."""
    if "x-kestrel-reason" in headers:
        return str(headers["x-kestrel-reason"])
    death = (headers.get("x-death") or [{}])[0]
    return f"broker: {death.get('reason', 'unknown')}"


# headers of the dead-lettering (ours and the broker's), dropped when a letter is replayed
_DROP = ("x-kestrel-", "x-death", "x-first-death", "x-last-death")


async def replay_dead_letters(transport: RabbitTransport, limit: int | None = None) -> int:
    """Send dead letters back to their routes (after the cause was fixed); the number sent.
    Each is acked on the dead-letter queue only after its republish is confirmed."""
    queue = await transport.channel.get_queue(transport.topology.dead, ensure=False)
    seen: set[str | None] = set()
    n = 0
    while limit is None or n < limit:
        msg = await queue.get(no_ack=False, fail=False)
        if msg is None:
            break
        if msg.message_id in seen:  # failed again since this replay began: leave it there
            await msg.nack(requeue=True)
            break
        seen.add(msg.message_id)
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith(_DROP)}
        replayed = (msg.headers or {}).get("x-kestrel-replayed", 0)
        headers["x-kestrel-replayed"] = int(replayed if isinstance(replayed, int) else 0) + 1
        await transport.publish(route_of(dict(msg.headers or {})), msg.body, headers,
                                msg.message_id or "")  # fmt: skip
        await msg.ack()
        n += 1
    return n


def topology_for(prefix: str, partitions: int, skip: tuple[str, ...] = ()) -> Topology:
    """The topology every command of one deployment must agree on: its partition groups
    come from the registered detectors' partition keys."""
    from kestrel.detect import DETECTORS
    from kestrel.pipeline.distributed import partition_groups

    groups = partition_groups(cls for name, cls in DETECTORS.items() if name not in skip)
    return Topology(prefix=prefix, partitions=partitions, groups=groups)
