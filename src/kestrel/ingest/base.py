"""The reader contract: a source in, chunks of (batch, rejected records) out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, ClassVar, Protocol

import pyarrow as pa

from kestrel.config import REJECTED_RAW_BYTES
from kestrel.events import Batch, empty_batch, event_id
from kestrel.store.tables import REJECTED_SCHEMA


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record came from: the file (``archive.zip!member`` inside archives) and the
    line (1-based), the record number (1-based, within the file) and the byte offset, as far
    as the format knows them."""

    path: str
    line: int | None = None
    record: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be turned into an event, kept aside with the reason."""

    position: SourcePosition
    reason: str
    raw: str = ""

    @classmethod
    def of(cls, position: SourcePosition, reason: str, raw: bytes | str = b"") -> Rejected:
        """Build one, keeping at most `REJECTED_RAW_BYTES` of the record."""
        if isinstance(raw, bytes):
            raw = raw[:REJECTED_RAW_BYTES].decode("utf-8", errors="replace")
        return cls(position, reason, raw[:REJECTED_RAW_BYTES])


def rejected_table(rejected: list[Rejected], fmt: str) -> pa.Table:
    """The rejected records as an Arrow table (for the store's `rejected` table)."""
    return pa.table(
        {
            "reject_id": [_reject_id(r) for r in rejected],
            "path": [r.position.path for r in rejected],
            "line": [r.position.line for r in rejected],
            "record": [r.position.record for r in rejected],
            "offset": [r.position.offset for r in rejected],
            "format": [fmt] * len(rejected),
            "reason": [r.reason for r in rejected],
            "raw": [r.raw for r in rejected],
        },
        schema=REJECTED_SCHEMA,
    )


def _reject_id(r: Rejected) -> str:
    """Same file, same place, same reason: the same rejection (re-ingest adds nothing)."""
    p = r.position
    key = f"{p.path}\0{p.line}\0{p.record}\0{p.offset}\0{r.reason}".encode()
    return event_id("rejected", key)


@dataclass(slots=True)
class Chunk:
    """What a reader yields: a batch of good events, the records set aside, and how many
    source records this chunk covered (good + rejected; duplicates are counted later)."""

    batch: Batch = field(default_factory=empty_batch)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """One readable stream: a file, or a member of an archive (already decompressed)."""

    name: str
    open: Callable[[], IO[bytes]]
    size: int | None = None


class Reader(Protocol):
    """Turns one source into chunks of normalized events. Bad records become `Rejected`
    rows; only a source that cannot be read at all raises `SourceError`."""

    name: ClassVar[str]

    def read(self, source: Source) -> Iterator[Chunk]:
        """Yield chunks until the source is exhausted."""
        ...
