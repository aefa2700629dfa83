"""Event intake for the API: a request body (JSON array, JSON Lines or concatenated JSON,
optionally gzip) → the same readers `kestrel ingest` uses → batches for the store.

Why reuse the ingest readers: an agent's events over HTTP and the same events from a file
must give the same rows and the same ``event_id`` (so a resend is a duplicate, not a new
event). Bad data never raises out of here as anything but `IntakeError`, which carries the
HTTP status (413 too large, 422 unreadable) and the reasons, so a client learns what to fix.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from kestrel.errors import SourceError
from kestrel.events import Batch, empty_batch
from kestrel.ingest import Rejected, Source, read_source, readers
from kestrel.ingest.archives import GZIP_MAGIC

MAX_REASONS = 100
_EMPTY_ARRAY = re.compile(rb"\[\s*\]")


class IntakeError(Exception):
    """A request the API refuses, with the status to answer and the reasons why."""

    def __init__(self, status: int, detail: str, rejections: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.rejections = rejections or []


@dataclass(slots=True)
class Parsed:
    """A request body read into one batch and its rejected records."""

    format: str
    batch: Batch = field(default_factory=empty_batch)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0


def gunzip(body: bytes, limit: int) -> bytes:
    """The body, decompressed when it is gzip; 413 past ``limit`` bytes (a gzip bomb stops
    at the limit, it is never inflated whole), 422 when the stream is damaged."""
    if not body.startswith(GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise IntakeError(422, f"damaged gzip body: {exc}") from exc
    if len(out) > limit:
        raise IntakeError(413, f"body decompresses to more than {limit} bytes")
    if not inflater.eof:
        raise IntakeError(422, "damaged gzip body: stream ends early")
    return out


def parse_body(data: bytes, fmt: str, name: str, max_events: int) -> Parsed:
    """Read ``data`` with the reader for ``fmt`` (``auto``: sniffed)."""
    if fmt != "auto" and fmt not in readers():
        raise IntakeError(422, f"unknown format {fmt!r}; known: auto, {', '.join(readers())}")
    stripped = data.strip()
    if not stripped:
        raise IntakeError(422, "empty body: send a JSON array, JSON Lines or gzip of either")
    if _EMPTY_ARRAY.fullmatch(stripped):  # a shipper with nothing to send is not an error
        return Parsed(fmt)
    source = Source(name, lambda: io.BytesIO(data), len(data))
    try:  # readers raise SourceError up front (sniffing) or on their first chunk
        return _read_all(source, fmt, max_events)
    except SourceError as exc:  # the CLI's wording names --format; a client sends ?format=
        reason = str(exc).removeprefix(f"{name}: ").replace("--format", "?format=")
        raise IntakeError(422, reason) from exc


def _read_all(source: Source, fmt: str, max_events: int) -> Parsed:
    found, chunks = read_source(source, fmt)
    parsed = Parsed(found)
    batches: list[pa.Table] = []
    for chunk in chunks:
        parsed.read += chunk.read
        if parsed.read > max_events:
            raise IntakeError(413, f"more than {max_events} records in one request; split it")
        batches.append(chunk.batch)
        parsed.rejected.extend(chunk.rejected)
    if batches:
        parsed.batch = pa.concat_tables(batches)
    if parsed.batch.num_rows == 0 and parsed.rejected:
        raise IntakeError(422, "no record could be read", rejection_list(parsed.rejected))
    return parsed


def rejection_list(rejected: list[Rejected]) -> list[dict[str, Any]]:
    """The first `MAX_REASONS` rejections in body order, as JSON: record, line, reason."""
    ordered = sorted(rejected, key=lambda r: (r.position.record or 0, r.position.line or 0))
    return [
        {"record": r.position.record, "line": r.position.line, "reason": r.reason}
        for r in ordered[:MAX_REASONS]
    ]
