"""A bounded on-disk spool of event batches, sent oldest first.

Every batch is written here before it is sent, and deleted only after the server answered
2xx, so a server outage or an agent restart loses nothing, and order is kept by the
segment sequence number in the file name. Bounded: past ``max_bytes`` the oldest segments
are dropped (and counted in `Spool.dropped`): an endpoint must not fill its own disk
because the server is gone for a week.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Segment:
    """One spooled batch: its sequence number, file and bytes (JSON Lines)."""

    seq: int
    path: Path
    body: bytes

    @property
    def count(self) -> int:
        return self.body.count(b"\n")


@dataclass(slots=True)
class Spool:
    """Segments ``<seq>.jsonl`` in ``folder``; thread-safe (collector and sender)."""

    folder: Path
    max_bytes: int = 256 * 1024 * 1024
    dropped: int = 0  # events dropped because the spool was full
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _sizes: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.glob(f"*{SUFFIX}"):
            if path.stem.isdigit():
                self._sizes[int(path.stem)] = path.stat().st_size
        self._next = max(self._sizes, default=0) + 1

    def put(self, envelopes: Sequence[bytes]) -> int | None:
        """Write a batch as one segment (atomically: temp file, fsync, rename)."""
        if not envelopes:
            return None
        body = b"".join(e + b"\n" for e in envelopes)
        with self._lock:
            seq, self._next = self._next, self._next + 1
            tmp = self.folder / f".{seq}.tmp"
            with tmp.open("wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self._path(seq))
            self._sizes[seq] = len(body)
            self._trim()
        return seq

    def oldest(self) -> Segment | None:
        """The oldest unsent segment, or None."""
        with self._lock:
            if not self._sizes:
                return None
            seq = min(self._sizes)
        return Segment(seq, self._path(seq), self._path(seq).read_bytes())

    def ack(self, seq: int) -> None:
        """The server has the segment: delete it."""
        with self._lock:
            self._path(seq).unlink(missing_ok=True)
            self._sizes.pop(seq, None)

    def pending(self) -> tuple[int, int]:
        """(segments, bytes) waiting to be sent."""
        with self._lock:
            return len(self._sizes), sum(self._sizes.values())

    def _trim(self) -> None:
        while sum(self._sizes.values()) > self.max_bytes and len(self._sizes) > 1:
            seq = min(self._sizes)
            path = self._path(seq)
            self.dropped += path.read_bytes().count(b"\n")
            path.unlink(missing_ok=True)
            del self._sizes[seq]

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:012d}{SUFFIX}"
