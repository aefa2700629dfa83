"""Group commit: batches of concurrent requests appended together, each request still told
its own stored / duplicate counts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from kestrel.api.writer import GroupWriter, _attribute, _Job
from kestrel.events import make_batch
from kestrel.store import DuckDBStore

T = datetime(2024, 5, 1, tzinfo=UTC)


def batch(ids: list[str]):
    n = len(ids)
    cols = {"event_id": ids, "time": [T] * n, "class": ["other"] * n, "source": ["agent"] * n,
            "raw": ["{}"] * n}  # fmt: skip
    return make_batch(cols, n)


def test_attribution_counts_the_store_and_earlier_requests_as_duplicates():
    group = [_Job(batch(["a", "b", "b"]), None, None), _Job(batch(["b", "c", "k"]), None, None)]  # type: ignore[arg-type]
    got = [(r.stored, r.duplicates) for r in _attribute(group, known={"k"})]
    assert got == [(2, 1), (1, 2)]


def test_concurrent_submits_store_everything_once(store: DuckDBStore):
    writer = GroupWriter(store, threading.RLock())
    results = []

    def send(prefix: str) -> None:
        results.append(writer.submit(batch([f"{prefix}{i}" for i in range(50)] + ["shared"]), None))

    threads = [threading.Thread(target=send, args=(p,)) for p in "wxyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert store.stats().total == 4 * 50 + 1
    assert sum(r.stored for r in results) == 201 and sum(r.duplicates for r in results) == 3
