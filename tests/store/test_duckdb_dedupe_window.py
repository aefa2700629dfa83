"""The DuckDB append dedupes against the stored rows within the batch's time span only (an
id is a hash of the record, and the time comes from the record): resends are still found
whatever else the batch holds, and the rest of the store is not read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from kestrel.events import make_batch
from kestrel.store import DuckDBStore

T = datetime(2024, 5, 1, tzinfo=UTC)


def batch(rows: list[tuple[str, datetime]]) -> pa.Table:
    n = len(rows)
    cols = {"event_id": [r[0] for r in rows], "time": [r[1] for r in rows],
            "class": ["other"] * n, "source": ["agent"] * n, "raw": ["{}"] * n}  # fmt: skip
    return make_batch(cols, n)


def test_resends_are_found_across_the_span_of_the_batch() -> None:
    store = DuckDBStore()
    old = [(f"old{i}", T + timedelta(days=i)) for i in range(30)]
    assert store.append(batch(old)).stored == 30
    # a batch mixing a resend from day 0, one from day 29 and new rows far later
    mixed = [old[0], old[29], ("new1", T + timedelta(days=400)), ("new2", T - timedelta(days=9))]
    got = store.append(batch(mixed))
    assert (got.stored, got.duplicates) == (2, 2)
    assert store.stats().total == 32
    again = store.append(batch(mixed + old))
    assert (again.stored, again.duplicates) == (0, 34)
    store.close()


def test_the_span_edges_are_inclusive_over_a_larger_store() -> None:
    store = DuckDBStore()
    store.execute(
        "INSERT INTO events (event_id, time, \"class\", source, raw) SELECT 'e' || i, "
        "TIMESTAMPTZ '2020-01-01 00:00:00+00' + i * INTERVAL 1 SECOND, 'other', 'agent', '{}' "
        "FROM range(200000) t(i)"
    )
    start = datetime(2020, 1, 1, tzinfo=UTC)
    first, last = ("e0", start), ("e199999", start + timedelta(seconds=199_999))
    # the batch spans exactly first .. last: both resends sit on the edges of the span
    got = store.append(batch([first, ("mid-new", start + timedelta(seconds=5)), last]))
    assert (got.stored, got.duplicates) == (1, 2)
    only_edge = store.append(batch([last]))
    assert (only_edge.stored, only_edge.duplicates) == (0, 1)
    assert store.stats().total == 200_001
    store.close()
