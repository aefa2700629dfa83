"""Windows EVTX files, through the ``evtx`` package (a Rust parser).

Each record comes out of ``PyEvtxParser.records_json()`` as JSON text
(``{"Event": {"System": ..., "EventData": ...}}``); ``raw`` is its canonical form (see
`kestrel.ingest.windows.evtx_canonical`) and the id hashes that, so the same record in
another file, or in ``evtx_dump``'s JSON read by the ``winlog-json`` reader, is one event.

A record the parser cannot read becomes a `Rejected` row with its number in the file and
the parser's reason, and reading goes on with the next one. A file the parser cannot open at
all (not EVTX, damaged header) becomes one `Rejected` row for the file. Should the parser
keep failing without moving on, the reader gives up after `MAX_CONSECUTIVE_FAILURES`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

import msgspec

from kestrel.config import BATCH_ROWS
from kestrel.ingest.base import Chunk, Rejected, Source, SourcePosition
from kestrel.ingest.framing import RawRecords, canonical
from kestrel.ingest.windows import evtx_canonical, normalize

MAX_CONSECUTIVE_FAILURES = 1000
_PARSER_ERRORS = (RuntimeError, OSError, ValueError)

OpenParser = Callable[[IO[bytes]], Iterator[Any]]
"""Opens a seekable stream and returns its records (``{"event_record_id", "data", ...}``)."""


def open_parser(stream: IO[bytes]) -> Iterator[Any]:
    """The ``evtx`` package's JSON record iterator over ``stream``."""
    from evtx import PyEvtxParser  # a native module: imported when an EVTX is read

    return iter(PyEvtxParser(stream).records_json())


class EvtxReader:
    """Reads EVTX files into normalized events (Sysmon, Security, PowerShell and the rest)."""

    name: ClassVar[str] = "evtx"

    def __init__(self, parser: OpenParser = open_parser, batch_rows: int = BATCH_ROWS) -> None:
        self._parser = parser
        self._batch_rows = batch_rows

    def read(self, source: Source) -> Iterator[Chunk]:
        with source.open() as stream:
            seekable = stream if stream.seekable() else io.BytesIO(stream.read())
            try:
                records = self._parser(seekable)
            except _PARSER_ERRORS as exc:
                reason = f"not a readable EVTX file: {exc}"
                yield Chunk(rejected=[Rejected.of(SourcePosition(source.name), reason)])
                return
            for run in self._runs(source.name, records):
                yield normalize(run, evtx_only=True)

    def _runs(self, path: str, records: Iterator[Any]) -> Iterator[RawRecords]:
        """Runs of at most ``batch_rows`` records, parser failures set aside in each run."""
        run = RawRecords(path)
        number = failures = 0
        while failures < MAX_CONSECUTIVE_FAILURES:  # the else below: it never moved on
            number += 1
            try:
                record = next(records)
            except StopIteration:
                break
            except _PARSER_ERRORS as exc:
                failures += 1
                _reject(run, number, f"unreadable EVTX record: {exc}")
                continue
            failures = 0
            _add(run, number, record)
            if run.count >= self._batch_rows:
                yield run
                run = RawRecords(path)
        else:
            _reject(run, number + 1, f"gave up after {failures} unreadable records in a row")
        if run.count:
            yield run


def _add(run: RawRecords, number: int, record: Any) -> None:
    """Add one parsed record's canonical JSON to ``run`` (or reject it)."""
    data = record.get("data") if isinstance(record, dict) else None
    if not isinstance(data, str):
        _reject(run, number, f"the parser gave no JSON for this record ({type(record).__name__})")
        return
    try:
        raw = evtx_canonical(canonical(data.encode()))
    except (msgspec.DecodeError, UnicodeError) as exc:
        _reject(run, number, f"the parser gave malformed JSON: {exc}", data)
        return
    run.raws.append(raw)
    run.lines.append(None)
    run.numbers.append(number)


def _reject(run: RawRecords, number: int, reason: str, raw: str = "") -> None:
    run.rejected.append(Rejected.of(SourcePosition(run.path, record=number), reason, raw))
