"""Group commit for intake: batches from concurrent requests are appended to the store
together, on one writer thread.

Why: an append costs a fixed part (the anti-join on ``event_id``, the commit) plus a part
per row, and the fixed part dominates at 1,000 events a request; four requests appended as
one cost about half as much per event (bench/RESULTS.md, API). Each request still learns
its own counts: before the append, `Store.known_event_ids` finds which ids the store has,
and ids repeated within the group count as duplicates for every request after the first.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from kestrel.events import Batch
from kestrel.store import AppendResult, Store, time_span

MAX_GROUP_ROWS = 50_000


@dataclass(slots=True)
class _Job:
    batch: Batch
    rejected: pa.Table | None
    done: Future[AppendResult]


class GroupWriter:
    """Appends queued batches in groups; `submit` blocks until its batch is stored."""

    def __init__(self, store: Store, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kestrel-intake", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch, rejected: pa.Table | None) -> AppendResult:
        """Store ``batch`` (and the rejected records) with whatever else is waiting."""
        job = _Job(batch, rejected, Future())
        self._jobs.put(job)
        return job.done.result()

    def pending(self) -> int:
        """Batches waiting for the writer (the queue-depth gauge)."""
        return self._jobs.qsize()

    def close(self) -> None:
        """Finish what is queued and stop the thread."""
        self._jobs.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while (first := self._jobs.get()) is not None:
            group = [first]
            rows = first.batch.num_rows
            while rows < MAX_GROUP_ROWS and not self._jobs.empty():
                nxt = self._jobs.get()
                if nxt is None:
                    self._write(group)
                    return
                group.append(nxt)
                rows += nxt.batch.num_rows
            self._write(group)

    def _write(self, group: list[_Job]) -> None:
        try:
            with self._lock:
                results = self._append(group)
        except Exception as exc:  # the requests answer with it; the writer goes on
            for job in group:
                job.done.set_exception(exc)
            return
        for job, result in zip(group, results, strict=True):
            job.done.set_result(result)

    def _append(self, group: list[_Job]) -> list[AppendResult]:
        batches = [j.batch for j in group if j.batch.num_rows]
        known = self._known_ids(batches) if batches else set()
        append_group(self._store, batches, [j.rejected for j in group])
        return _attribute(group, known)

    def _known_ids(self, batches: list[Batch]) -> set[str]:
        ids = pa.chunked_array([b.column("event_id") for b in batches])
        span = time_span(pa.chunked_array([b.column("time") for b in batches]))
        return set(self._store.known_event_ids(ids, span).to_pylist())


def append_group(store: Store, batches: list[Batch], rejected: list[pa.Table | None]) -> None:
    """A group of requests into the store: their rows in one append, then each request's
    rejected records (both writers, `GroupWriter` and the spool's)."""
    rows = [b for b in batches if b.num_rows]
    if rows:
        store.append(pa.concat_tables(rows))
    for table in rejected:
        if table is not None and table.num_rows:
            store.append_rejected(table)


def _attribute(group: list[_Job], known: set[str]) -> list[AppendResult]:
    """Per request: ids the store had, or that an earlier row of the group had, are
    duplicates; the rest were stored by this request."""
    seen: set[str] = set(known)
    out = []
    for job in group:
        ids = job.batch.column("event_id").to_pylist()
        new = {i for i in ids if i not in seen}
        stored = len(new)
        seen.update(new)
        out.append(AppendResult(stored, len(ids) - stored))
    return out
