"""Intake that acknowledges after a durable write-ahead spool, not after the DuckDB commit.

Why: with the answer held until the store commit, four senders have at most four requests
in the writer's queue, so the store appends 4,000 rows at a time; an append of 20,000 rows
costs about half as much per row (bench/RESULTS.md, API), and parsing the next requests
overlaps the append instead of waiting for it. Why it is safe: a request is answered only
after its body is in the spool file and ``fdatasync`` returned, so an acknowledged event is
never lost. At start the spool is replayed into the store before anything is served (the
store's append drops ``event_id`` duplicates, so replaying a body that was also committed
stores nothing twice), then emptied.

What is spooled is the body as received (gzip stays gzip) with its format and sender name:
parsing is deterministic, so the replay gives the same rows and the same ``event_id``.

Per-request counts stay exact: under a lock a request checks its ids against the
store (on a connection of its own, limited to the batch's time span, since equal ids mean
equal records and so equal times) and against the ids spooled but not yet committed; the
writer forgets a group's ids under the same lock, after their commit.

A record: ``KSP1``, header length, body length, CRC-32 of both (little-endian u32s), a JSON
header ``{"format", "name"}``, the body. A torn last record (a crash mid-write, never
acknowledged) fails its length or CRC check and is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kestrel.api.intake import IntakeError, gunzip, parse_body
from kestrel.events import Batch
from kestrel.ingest.base import rejected_table
from kestrel.store import AppendResult, DuckDBStore, time_span
from kestrel.store.base import unique_by_event_id

log = logging.getLogger(__name__)

MAGIC = b"KSP1"
_HEAD = struct.Struct("<4sIII")
SEGMENT_BYTES = 64 * 1024 * 1024
# An append's CPU per row falls with its size, and falls most at DuckDB's row group
# (ROW_GROUP rows): an insert of at least one row group is compressed straight into the
# file, while a smaller one goes through the WAL into an uncompressed in-memory row group
# that a checkpoint later reads back, compresses and merges with its neighbours. Measured
# with the bench's rows at load 3-4 (insert + the final checkpoint, one-batch scans):
# 13.5-14 us/row in appends of 24,000-96,000 rows, 7.3-8.9 in appends of 122,880 or
# 245,760 (bench/RESULTS.md, API). So the writer appends a whole row group when that many
# rows wait (a request's rows may be split across two appends), and when fewer wait it
# lingers: LINGER_SECONDS for the oldest request, and up to MAX_LINGER_SECONDS while rows
# come fast enough to fill a row group by then. Neither delays an answer (requests are
# answered from the spool); they delay only when rows become visible to readers.
ROW_GROUP = 122_880  # DuckDB's rows per row group (its default, which the store keeps)
GROUP_ROWS = ROW_GROUP  # rows the writer appends at once at most
LINGER_SECONDS = 0.25  # how long the oldest queued request waits for a group to fill
MAX_LINGER_SECONDS = 4.0  # ... while rows arrive fast enough to fill it by then
# requests wait (back pressure) while this many rows await the writer or are being
# appended: one group in the append, one full behind it, half of one filling
QUEUED_ROWS = 2 * ROW_GROUP + ROW_GROUP // 2
# DuckDB checkpoints (compresses the row groups into the file) at a commit that takes its
# WAL past `checkpoint_threshold`, 16 MB by default: with these rows that is nearly every
# group, and each checkpoint re-compresses the table's last, partly filled row group of all
# 86 columns. Appends of 20,000 bench rows cost 31-32 us/row so, 14-15 with 1 GB (plus 4-6
# for the one checkpoint at the end), measured at load 10. The WAL is as durable as the
# file (and the spool is ahead of both), so a larger one costs only replay time at start.
CHECKPOINT_WAL = "256MB"
_RETRY_SECONDS = 1.0


@dataclass(slots=True)
class _Job:
    """One request's rows on their way to the store."""

    rows: Batch  # the rows new to the store, each event_id once
    rejected: pa.Table | None
    new_ids: list[str]
    segment: int
    queued: float  # time.monotonic() when it was queued
    checked: int  # the store's `appends` count when its ids were checked
    taken: int = 0  # rows handed to the writer so far (a job may span two appends)


class Spool:
    """Append-only segment files ``<seq>.spool`` in ``folder``."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        found = segments(folder)
        self.seq = int(found[-1].stem) + 1 if found else 1
        self._fd = self._open(self.seq)
        self._size = 0
        self._retired: list[int] = []  # rotated out, maybe still being synced: closed last
        self._lock = threading.Lock()
        self.open_jobs: dict[int, int] = {}  # segment → records written, not yet stored

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        return segments(self.folder)

    def _open(self, seq: int) -> int:
        fd = os.open(self.folder / f"{seq:012d}.spool", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        _sync_dir(self.folder)  # the new name itself must survive a crash
        return fd

    def write(self, fmt: str, name: str, body: bytes) -> int:
        """Append one record and make it durable; the segment it went to. Concurrent
        writers append under a lock and sync outside it, so one ``fdatasync`` often
        covers several requests' records (group commit)."""
        header = json.dumps({"format": fmt, "name": name}).encode()
        crc = zlib.crc32(body, zlib.crc32(header))
        record = _HEAD.pack(MAGIC, len(header), len(body), crc) + header + body
        with self._lock:
            if self._size >= self._segment_bytes:
                self._retired.append(self._fd)
                if self.seq not in self.open_jobs:  # all of it stored already
                    (self.folder / f"{self.seq:012d}.spool").unlink(missing_ok=True)
                self.seq += 1
                self._fd = self._open(self.seq)
                self._size = 0
            fd, seq = self._fd, self.seq
            os.write(fd, record)
            self._size += len(record)
            self.open_jobs[seq] = self.open_jobs.get(seq, 0) + 1
        os.fdatasync(fd)
        return seq

    def stored(self, seq: int) -> None:
        """One record of segment ``seq`` is in the store; a rotated segment whose records
        all are is deleted."""
        with self._lock:
            left = self.open_jobs[seq] - 1
            if left:
                self.open_jobs[seq] = left
                return
            del self.open_jobs[seq]
            if seq != self.seq:
                (self.folder / f"{seq:012d}.spool").unlink(missing_ok=True)

    def close(self, drop_all: bool) -> None:
        with self._lock:
            for fd in (*self._retired, self._fd):
                os.close(fd)
            if drop_all:
                for path in self.segments():
                    path.unlink()


def segments(folder: Path) -> list[Path]:
    """The segment files in ``folder``, oldest first."""
    return sorted(folder.glob("*.spool"), key=lambda p: int(p.stem))


def records(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(format, name, body) of each whole record in a segment; stops at a torn one."""
    data = path.read_bytes()
    at = 0
    while at + _HEAD.size <= len(data):
        magic, head_len, body_len, crc = _HEAD.unpack_from(data, at)
        start = at + _HEAD.size
        end = start + head_len + body_len
        if magic != MAGIC or end > len(data):
            log.warning("%s: torn record at byte %d skipped (never acknowledged)", path, at)
            return
        header, body = data[start : start + head_len], data[start + head_len : end]
        if zlib.crc32(body, zlib.crc32(header)) != crc:
            log.warning("%s: damaged record at byte %d skipped", path, at)
            return
        meta = json.loads(header)
        yield meta["format"], meta["name"], body
        at = end


def replay(folder: Path, store: DuckDBStore, max_decoded: int, max_events: int) -> int:
    """Store every spooled body (a restart after a crash), then drop the segments; the
    number of events the store did not have yet."""
    stored = 0
    found = segments(folder) if folder.is_dir() else []
    for path in found:
        for fmt, name, body in records(path):
            try:
                parsed = parse_body(gunzip(body, max_decoded), fmt, name, max_events)
            except IntakeError as exc:  # it parsed when it was accepted: a reader change
                log.error("%s: spooled body from %s no longer reads: %s", path, name, exc)
                continue
            stored += store.append(parsed.batch).stored if parsed.batch.num_rows else 0
            if parsed.rejected:
                store.append_rejected(rejected_table(parsed.rejected, parsed.format))
    for path in found:  # all of it is in the store now
        path.unlink()
    if found:
        log.warning("spool %s replayed: %d events were not in the store yet", folder, stored)
    return stored


class SpoolWriter:
    """Intake through the spool: `submit` returns once the body is durable; one thread
    appends what is queued to the store in groups of up to `GROUP_ROWS` rows, lingering
    for a group to fill (`LINGER_SECONDS`, `MAX_LINGER_SECONDS`).

    Each id is checked once, by the request (its counts need it): the writer inserts the
    rows the requests found new (`DuckDBStore.insert_new`) without looking them up again,
    unless another writer appended to the store after a request's check (then the group
    goes through `DuckDBStore.append`, which looks them up)."""

    def __init__(self, store: DuckDBStore, lock: threading.RLock, folder: Path,
                 max_decoded: int, max_events: int) -> None:  # fmt: skip
        self._store = store
        self._lock = lock  # the store lock: the writer appends under it
        self._ids_lock = threading.Lock()  # the queued-ids set and the ids cursor
        with lock:
            store.execute(f"SET checkpoint_threshold = '{CHECKPOINT_WAL}'")
            self.recovered = replay(folder, store, max_decoded, max_events)
            store.index_event_ids()  # the requests' id checks skip DuckDB for new ids
            self._ids_cursor = store.cursor()
        self._spool = Spool(folder)
        self._inflight: set[str] = set()
        self._jobs: deque[_Job | None] = deque()
        self._queued_rows = 0  # rows queued or being appended (back pressure)
        self._waiting_rows = 0  # rows queued and not yet taken by the writer
        self._draining = 0  # callers of `wait_idle`: the writer does not linger meanwhile
        self._cond = threading.Condition()
        self._failed = 0
        self._thread = threading.Thread(target=self._run, name="kestrel-spool", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch, rejected: pa.Table | None, fmt: str, name: str,
               body: bytes) -> AppendResult:  # fmt: skip
        """Spool ``body`` (whose parse is ``batch`` and ``rejected``) and queue the rows;
        the counts say which rows are new to the store and to what is queued."""
        with self._cond:  # back pressure: a slow store slows the senders, memory stays put
            while self._queued_rows >= QUEUED_ROWS:
                self._cond.wait()
        ids = batch.column("event_id").to_pylist() if batch.num_rows else []
        with self._ids_lock:
            checked = self._store.appends
            known = self._known(batch) | self._inflight.intersection(ids)
            new = [i for i in dict.fromkeys(ids) if i not in known]
            self._inflight.update(new)
        try:
            segment = self._spool.write(fmt, name, body)
        except OSError:
            with self._ids_lock:  # not accepted after all: the client gets a 500 and resends
                self._inflight.difference_update(new)
            raise
        rows = batch if len(new) == len(ids) else _only(batch, new)
        job = _Job(rows, rejected, new, segment, time.monotonic(), checked)
        with self._cond:
            self._jobs.append(job)
            self._queued_rows += rows.num_rows
            self._waiting_rows += rows.num_rows
            self._cond.notify_all()
        return AppendResult(len(new), len(ids) - len(new))

    def _known(self, batch: Batch) -> set[str]:
        """Ids of ``batch`` the store already has (`Store.known_event_ids`, within the
        batch's time span, on the ids connection so that the writer's appends do not make
        the request wait)."""
        if batch.num_rows == 0:
            return set()
        span = time_span(batch.column("time"))
        known = self._ids_cursor.known_event_ids(batch.column("event_id"), span)
        return set(known.to_pylist())

    def pending(self) -> int:
        """Requests spooled and not yet in the store (the queue-depth gauge)."""
        return len(self._jobs)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until everything spooled is in the store (tests, benchmarks)."""
        end = time.monotonic() + timeout
        with self._cond:
            self._draining += 1  # no lingering while someone waits for the store
            self._cond.notify_all()
            try:
                while self._queued_rows or self._jobs:
                    if not self._cond.wait(max(0.0, end - time.monotonic())):
                        return False
            finally:
                self._draining -= 1
        return True

    def close(self) -> None:
        """Store what is queued, stop the thread, drop the spool when all of it is stored."""
        with self._cond:
            self._jobs.append(None)
            self._cond.notify_all()
        self._thread.join(120)
        drained = not self._thread.is_alive() and not self._failed
        self._spool.close(drop_all=drained)
        with self._ids_lock:
            self._ids_cursor.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                self._linger()
                group, stop = self._take()
            if group:
                self._write(group)
            if stop:
                return

    def _take(self) -> tuple[list[_Piece], bool]:
        """Up to `GROUP_ROWS` queued rows, oldest first (under ``_cond``), the last
        request's cut where the group is full; and whether `close` asked to stop."""
        group: list[_Piece] = []
        rows = 0
        while self._jobs and rows < GROUP_ROWS:
            job = self._jobs[0]
            if job is None:
                return group, True
            n = min(job.rows.num_rows - job.taken, GROUP_ROWS - rows)
            group.append(_Piece(job, job.taken, n))
            job.taken += n
            rows += n
            if job.taken < job.rows.num_rows:
                break  # the rest goes with the next group
            self._jobs.popleft()
        self._waiting_rows -= rows
        return group, False

    def _linger(self) -> None:
        """With fewer than `GROUP_ROWS` rows queued, wait (holding ``_cond``'s lock only
        while not waiting) until there are, or until the oldest request has waited
        `LINGER_SECONDS` (`MAX_LINGER_SECONDS` while rows arrive fast enough to fill the
        group by then and the last came less than `LINGER_SECONDS` ago), or the writer is
        asked to stop or drain (`close`, `wait_idle`)."""
        oldest = self._jobs[0]
        if oldest is None:
            return
        while (
            self._waiting_rows < GROUP_ROWS
            and (newest := self._jobs[-1]) is not None
            and not self._draining
        ):
            now = time.monotonic()
            waited = now - oldest.queued
            filling = (  # rows still coming (the last within LINGER_SECONDS), fast enough
                now - newest.queued < LINGER_SECONDS
                and self._waiting_rows * MAX_LINGER_SECONDS >= GROUP_ROWS * waited
            )
            left = (MAX_LINGER_SECONDS if filling else LINGER_SECONDS) - waited
            if left <= 0:
                return
            self._cond.wait(min(left, LINGER_SECONDS))

    def _write(self, group: list[_Piece]) -> None:
        """Append ``group`` until it is in (it is acknowledged: it must not be dropped)."""
        while True:
            try:
                with self._lock:
                    self._append(group)
                break
            except Exception:  # a full disk, say: keep the rows, try again
                self._failed += 1
                log.exception("spooled intake: append failed; retrying")
                time.sleep(_RETRY_SECONDS)
        self._failed = 0
        done = [p.job for p in group if p.completes]
        with self._ids_lock:  # after the commit, so a request sees the ids in one place
            for job in done:
                self._inflight.difference_update(job.new_ids)
        for job in done:
            self._spool.stored(job.segment)
        with self._cond:
            self._queued_rows -= sum(p.rows for p in group)
            self._cond.notify_all()

    def _append(self, group: list[_Piece]) -> None:
        """The group's rows in one insert, then the rejected records of the requests it
        completes. The requests checked the ids; only when another writer appended since a
        check (`DuckDBStore.appends`) are they looked up again."""
        pieces = [p.job.rows.slice(p.start, p.rows) for p in group if p.rows]
        if pieces:
            rows = pa.concat_tables(pieces)
            if all(p.job.checked == self._store.appends for p in group):
                self._store.insert_new(rows)
            else:
                self._store.append(rows)
        for p in group:
            if p.completes and p.job.rejected is not None and p.job.rejected.num_rows:
                self._store.append_rejected(p.job.rejected)


@dataclass(slots=True)
class _Piece:
    """Rows ``start`` to ``start + rows`` of a job, in one append."""

    job: _Job
    start: int
    rows: int

    @property
    def completes(self) -> bool:
        """Whether this piece is the job's last: its request is then all in the store."""
        return self.start + self.rows == int(self.job.rows.num_rows)


def _only(batch: Batch, new: list[str]) -> Batch:
    """The rows of ``batch`` whose ids are in ``new``, each id's first row."""
    import pyarrow.compute as pc

    unique = unique_by_event_id(batch)
    return unique.filter(pc.is_in(unique.column("event_id"), pa.array(new, pa.string())))


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
