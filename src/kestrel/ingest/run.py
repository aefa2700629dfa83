"""Reading paths into the store: sources → reader → batches → store, with a report."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from kestrel.errors import ConfigError, SourceError
from kestrel.events import Batch
from kestrel.ingest.archives import sources
from kestrel.ingest.base import Chunk, Rejected, Source, SourcePosition, rejected_table
from kestrel.ingest.registry import readers
from kestrel.ingest.sniff import sniff
from kestrel.store import AppendResult, Store


@dataclass(slots=True)
class FormatCounts:
    """Counts for one format: records read, events stored, duplicates, records rejected."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass(slots=True)
class IngestReport:
    """What an ingest did, for the CLI summary and the API."""

    by_format: dict[str, FormatCounts] = field(default_factory=dict)
    by_class: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sources: int = 0

    def total(self) -> FormatCounts:
        """The counts summed over formats."""
        out = FormatCounts()
        for c in self.by_format.values():
            out.read += c.read
            out.stored += c.stored
            out.duplicates += c.duplicates
            out.rejected += c.rejected
        return out


Progress = Callable[[str, int], None]
"""Called with (source name, records read in the chunk just stored)."""


def read_source(source: Source, fmt: str = "auto") -> tuple[str, Iterator[Chunk]]:
    """The format of ``source`` and its chunks. Raises `SourceError` for an unknown format."""
    known = readers()
    name = sniff(source) if fmt == "auto" else fmt
    if name is None:
        raise SourceError(
            f"{source.name}: unknown format; name one with --format ({', '.join(sorted(known))})"
        )
    if name not in known:
        raise SourceError(f"unknown format {name!r}; known: {', '.join(sorted(known))}")
    return name, known[name]().read(source)


def ingest_paths(
    paths: Iterable[str | Path],
    store: Store,
    fmt: str = "auto",
    progress: Progress | None = None,
    transform: Callable[[Batch], Batch] | None = None,
) -> IngestReport:
    """Read every path (files, folders, archives) into ``store``; ``transform`` (the
    enrichment stage, `kestrel ingest --enrich`) runs on each batch before it is stored.

    A source in an unknown format is skipped and listed in the report; a path the user named
    directly that cannot be read at all raises `SourceError` after the others are done.
    """
    if fmt != "auto" and fmt not in readers():
        raise ConfigError(f"unknown format {fmt!r}; known: auto, {', '.join(sorted(readers()))}")
    report = IngestReport()
    failures: list[str] = []
    with _Writer(store, report, transform) as writer:
        for path in paths:
            errors: dict[str, str] = {}
            try:
                for source in sources(Path(path), errors):
                    _ingest_source(source, fmt, writer, report, errors, progress)
            except SourceError as exc:
                failures.append(str(exc))
    if failures:
        raise SourceError("; ".join(failures))
    return report


def _ingest_source(
    source: Source,
    fmt: str,
    writer: _Writer,
    report: IngestReport,
    errors: dict[str, str],
    progress: Progress | None,
) -> None:
    try:
        name, chunks = read_source(source, fmt)
    except SourceError as exc:
        report.skipped.append((source.name, str(exc)))
        return
    report.sources += 1
    for chunk in chunks:
        writer.submit(chunk, name)
        if progress:
            progress(source.name, chunk.read)
    if source.name in errors:  # a damaged gzip / zip member: what came before is kept
        damaged = Rejected.of(SourcePosition(source.name), errors.pop(source.name))
        writer.submit(Chunk(rejected=[damaged]), name)


class _Writer:
    """Appends chunks to the store on one background thread while the reader decodes the
    next ones, so reading (Python, one core) and storing (DuckDB, native code that releases
    the GIL) overlap. At most `_IN_FLIGHT` chunks wait, which bounds memory; while ingest
    runs only this thread touches the store."""

    _IN_FLIGHT = 2

    def __init__(
        self, store: Store, report: IngestReport, transform: Callable[[Batch], Batch] | None
    ) -> None:
        self._store = store
        self._transform = transform
        self._report = report
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kestrel-store")
        self._pending: deque[tuple[Future[AppendResult], Chunk, str]] = deque()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._settle()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, chunk: Chunk, fmt: str) -> None:
        """Queue ``chunk`` for the store; wait for the oldest when too many are queued."""
        self._pending.append((self._pool.submit(self._write, chunk, fmt), chunk, fmt))
        while len(self._pending) > self._IN_FLIGHT:
            self._settle()

    def _write(self, chunk: Chunk, fmt: str) -> AppendResult:
        batch = self._transform(chunk.batch) if self._transform else chunk.batch
        result = self._store.append(batch)
        self._store.append_rejected(rejected_table(chunk.rejected, fmt))
        return result

    def _settle(self) -> None:
        future, chunk, fmt = self._pending.popleft()
        result = future.result()  # a store failure surfaces here, in the caller's thread
        counts = self._report.by_format.setdefault(fmt, FormatCounts())
        counts.read += chunk.read
        counts.stored += result.stored
        counts.duplicates += result.duplicates
        counts.rejected += len(chunk.rejected)
        self._report.rejected.extend(chunk.rejected)
        if chunk.batch.num_rows:
            for row in pc.value_counts(chunk.batch.column("class")).to_pylist():
                self._report.by_class[(fmt, str(row["values"]))] += int(row["counts"])
