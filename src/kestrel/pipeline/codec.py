"""Batches on the wire and their routing: Arrow IPC bodies, entity partitions, time slices.

Why Arrow IPC (zstd-compressed): the batch is already Arrow, so encoding is a copy of its
buffers, not one object per event, and the receiver gets the same typed table back.

Why partitions are computed here rather than by RabbitMQ's consistent-hash exchange: that
exchange routes a whole message by one key, but a message is a batch of many entities, so
the batch must be split per partition before it is published anyway; a stable hash of
``entity_id`` modulo the partition count does it with plain direct routing, on any broker
(the plugin is not enabled on every deployment, this one included).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from hashlib import blake2b

import pyarrow as pa
import pyarrow.compute as pc

from kestrel.events import SCHEMA, Batch

_WRITE = pa.ipc.IpcWriteOptions(compression="zstd")


def encode(batch: pa.Table) -> bytes:
    """A table as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_WRITE) as writer:
        writer.write_table(batch)
    return bytes(sink.getvalue().to_pybytes())


def decode(body: bytes) -> Batch:
    """An Arrow IPC stream as an event batch conforming to `SCHEMA` (raises on anything
    else: the caller dead-letters it)."""
    table = pa.ipc.open_stream(body).read_all()
    missing = [n for n in ("event_id", "time") if n not in table.column_names]
    if missing:
        raise ValueError(f"batch lacks required columns {missing}")
    batch = table.select([n for n in SCHEMA.names if n in table.column_names])
    for name in SCHEMA.names:
        if name not in batch.column_names:
            batch = batch.append_column(name, pa.nulls(batch.num_rows, SCHEMA.field(name).type))
    batch = batch.select(SCHEMA.names).cast(SCHEMA)
    if batch.column("event_id").null_count or batch.column("time").null_count:
        raise ValueError("batch has events without event_id or time")
    return batch


def partition_of(entity_id: str | None, partitions: int) -> int:
    """The partition of one entity: stable across processes and versions (BLAKE2b), unlike
    Python's ``hash``."""
    digest = blake2b((entity_id or "").encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def split_by_partition(
    batch: Batch, partitions: int, key: tuple[str, ...] = ("entity_id",)
) -> dict[int, Batch]:
    """The rows of each partition by ``key`` (the first non-null of those columns); each
    key value is hashed once, not once per event."""
    value = pc.coalesce(*(batch.column(k) for k in key), pa.scalar(""))
    encoded = pc.dictionary_encode(value).combine_chunks()
    parts = pa.array([partition_of(v, partitions) for v in encoded.dictionary.to_pylist()])
    rows = pc.take(parts, encoded.indices)
    return {int(p): batch.filter(pc.equal(rows, p)) for p in pc.unique(rows).to_pylist()}


def time_slices(batch: Batch, width: timedelta, origin: datetime) -> Iterator[Batch]:
    """``batch`` cut at ``origin + k * width``: the embedded runner's slices, so that a
    baseline sees the same "before the slice" whichever runner feeds it."""
    if batch.num_rows == 0:
        return
    times = batch.column("time")
    width_us = width // timedelta(microseconds=1)
    start = pa.scalar(origin, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py()
    index = pc.divide(pc.subtract(times.cast(pa.int64()), start), width_us)
    for k in pc.unique(index).to_pylist():
        yield sort_events(batch.filter(pc.equal(index, k)))


def sort_events(batch: Batch) -> Batch:
    """Events ordered as the store returns them (time, then event_id)."""
    return batch.take(pc.sort_indices(batch, [("time", "ascending"), ("event_id", "ascending")]))
