"""Splitting a JSON source into records, with positions, before any reader looks inside.

Two framings cover every JSON source Kestrel reads:

* **JSON Lines**: one record per line. Lines are read in chunks, never whole files, and a
  line longer than `MAX_RECORD_BYTES` is rejected and skipped without being held in memory.
* **Documents**: a JSON array, a CloudTrail delivery file ``{"Records": [...]}``, or JSON
  objects written one after another (``evtx_dump`` prints them pretty, several per file).
  These are read whole (up to `MAX_DOCUMENT_BYTES`); a truncated or malformed document keeps
  every record before the damage and rejects the rest with its line and offset.

Each good record comes out as its *canonical* bytes: the JSON with insignificant whitespace
removed (``msgspec.json.format(indent=-1)``), which is both what ``raw`` stores and what the
event id hashes, so the same record pretty-printed or on one line is the same event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import msgspec

from kestrel import config
from kestrel.ingest.base import Rejected, Source, SourcePosition

_READ_BYTES = 4 * 1024 * 1024
_WS = b" \t\r\n"


@dataclass(slots=True)
class RawRecords:
    """A run of framed records from one source: canonical bytes and where each came from."""

    path: str
    raws: list[bytes] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def position(self, i: int) -> SourcePosition:
        """The source position of record ``i`` of this run."""
        return SourcePosition(self.path, line=self.lines[i], record=self.numbers[i])

    @property
    def count(self) -> int:
        """Records covered, good and rejected."""
        return len(self.raws) + len(self.rejected)


def canonical(raw: bytes) -> bytes:
    """The record without insignificant whitespace; raises ``msgspec.DecodeError`` if it is
    not one well-formed JSON value."""
    return msgspec.json.format(raw, indent=-1)


def iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, line)`` for each line; ``line`` is None for a line longer than
    ``max_bytes``, which is skipped without being kept."""
    line_no = 0
    partial = b""
    skipping = False
    while chunk := stream.read(_READ_BYTES):
        pieces = chunk.split(b"\n")
        if skipping:
            if len(pieces) == 1:
                continue
            skipping = False
            line_no += 1
            yield line_no, None
            pieces = pieces[1:]
        else:
            pieces[0] = partial + pieces[0]
        partial = pieces.pop()
        for piece in pieces:
            line_no += 1
            yield line_no, piece if len(piece) <= max_bytes else None
        if len(partial) > max_bytes:
            partial, skipping = b"", True
    if skipping:
        yield line_no + 1, None
    elif partial:
        yield line_no + 1, partial


def frame_lines(source: Source, batch_rows: int) -> Iterator[RawRecords]:
    """Frame a JSON Lines source into runs of at most ``batch_rows`` records."""
    max_bytes = config.MAX_RECORD_BYTES
    run = RawRecords(source.name)
    number = 0
    with source.open() as stream:
        for line_no, line in iter_lines(stream, max_bytes):
            if line is not None:
                line = line.strip(_WS)
                if not line:
                    continue
            number += 1
            _add_line(run, line, line_no, number, max_bytes)
            if run.count >= batch_rows:
                yield run
                run = RawRecords(source.name)
    if run.count:
        yield run


def _add_line(run: RawRecords, line: bytes | None, line_no: int, number: int, cap: int) -> None:
    if line is None:
        pos = SourcePosition(run.path, line=line_no, record=number)
        run.rejected.append(Rejected.of(pos, f"line longer than {cap} bytes; skipped"))
        return
    try:
        raw = canonical(line)
    except msgspec.DecodeError as exc:
        pos = SourcePosition(run.path, line=line_no, record=number)
        run.rejected.append(Rejected.of(pos, f"malformed JSON: {exc}", line))
        return
    run.raws.append(raw)
    run.lines.append(line_no)
    run.numbers.append(number)


def frame_document(source: Source, records_key: str | None = "Records") -> RawRecords:
    """Frame a whole-document JSON source: an array, ``{records_key: [...]}``, or
    concatenated objects."""
    run = RawRecords(source.name)
    data = _read_capped(source, run)
    if data is None:
        return run
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    start = _skip_ws(text, 0)
    if start >= len(text):
        return run
    if text[start] == "[":
        _split_array(text, start, run)
    elif records_key and _is_records_object(data, records_key):
        _split_array(text, text.index("[", text.index(f'"{records_key}"')), run)
    else:
        _split_concatenated(text, start, run)
    return run


def _read_capped(source: Source, run: RawRecords) -> bytes | None:
    cap = config.MAX_DOCUMENT_BYTES
    with source.open() as stream:
        data = stream.read(cap + 1)
    if len(data) > cap:
        pos = SourcePosition(source.name, line=1, record=1, offset=0)
        run.rejected.append(Rejected.of(pos, f"JSON document larger than {cap} bytes; skipped"))
        return None
    return data


def _is_records_object(data: bytes, key: str) -> bool:
    """True when the document is one object whose ``key`` member is an array."""
    try:
        top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f'"{key}"' in data[:4096].decode("utf-8", errors="replace")
    value = top.get(key)
    return value is not None and bytes(value).lstrip(_WS).startswith(b"[")


_decoder = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def _split_array(text: str, start: int, run: RawRecords) -> None:
    """Elements of the array opening at ``start``; stop at the first damage."""
    i = _skip_ws(text, start + 1)
    number = 0
    while i < len(text) and text[i] != "]":
        number += 1
        end = _take_value(text, i, number, run)
        if end < 0:
            return
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
    if i >= len(text):
        _reject_rest(text, i, number + 1, run, "truncated JSON document: array never closed")


def _split_concatenated(text: str, start: int, run: RawRecords) -> None:
    """JSON values written one after another (whitespace between them)."""
    i = start
    number = 0
    while i < len(text):
        number += 1
        end = _take_value(text, i, number, run)
        if end < 0:
            return
        i = _skip_ws(text, end)


def _take_value(text: str, i: int, number: int, run: RawRecords) -> int:
    """Add the value at ``i`` to ``run``; return the offset just past it, or -1 (and reject
    the rest) when it is damaged."""
    try:
        _, end = _decoder.raw_decode(text, i)
    except json.JSONDecodeError as exc:
        _reject_rest(
            text,
            i,
            number,
            run,
            f"malformed JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}; the rest of the document is set aside",
        )
        return -1
    raw = text[i:end].encode("utf-8")
    run.raws.append(canonical(raw))
    run.lines.append(text.count("\n", 0, i) + 1)
    run.numbers.append(number)
    return end


def _reject_rest(text: str, i: int, number: int, run: RawRecords, reason: str) -> None:
    pos = SourcePosition(run.path, line=text.count("\n", 0, i) + 1, record=number, offset=i)
    run.rejected.append(Rejected.of(pos, reason, text[i:].encode("utf-8")))


def frame_json(source: Source, batch_rows: int) -> Iterator[RawRecords]:
    """Frame any JSON source: JSON Lines when the first line is a whole value, else a
    document. Document runs are split into ``batch_rows`` pieces."""
    with source.open() as stream:
        head = stream.read(64 * 1024)
    first = head.lstrip(_WS + b"\xef\xbb\xbf")[:1]
    if first == b"{" and _first_line_is_value(head):
        yield from frame_lines(source, batch_rows)
        return
    run = frame_document(source)
    for lo in range(0, max(len(run.raws), 1), batch_rows):
        piece = RawRecords(
            run.path,
            run.raws[lo : lo + batch_rows],
            run.lines[lo : lo + batch_rows],
            run.numbers[lo : lo + batch_rows],
        )
        if lo + batch_rows >= len(run.raws):
            piece.rejected = run.rejected
        yield piece


def _first_line_is_value(head: bytes) -> bool:
    """JSON Lines when one of the first lines is a whole object on its own (so one malformed
    first line does not turn a JSON Lines file into a broken document)."""
    lines = head.lstrip(_WS + b"\xef\xbb\xbf").split(b"\n", 5)[:5]
    for line in lines:
        line = line.strip(_WS)
        if not line.startswith(b"{"):
            continue
        try:
            canonical(line)
        except msgspec.DecodeError:
            continue
        return True
    return False
