from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from kestrel.errors import ConfigError
from kestrel.events import make_batch
from kestrel.ingest.base import Rejected, SourcePosition, rejected_table
from kestrel.store import DuckDBStore, EventFilter, open_store


def _batch(ids: list[str], classes: list[str] | None = None, hour: int = 0) -> pa.Table:
    n = len(ids)
    return make_batch({
        "event_id": ids,
        "time": pa.array([datetime(2024, 1, 1, hour, i, tzinfo=UTC) for i in range(n)],
                         pa.timestamp("us", tz="UTC")),
        "class": classes or ["process"] * n,
        "source": ["agent"] * n,
        "entity_id": [f"host-{i % 2}" for i in range(n)],
        "raw": ["{}"] * n,
    }, n)  # fmt: skip


def test_append_is_idempotent_and_counts_duplicates(store: DuckDBStore):
    first = store.append(_batch(["a", "b", "c"]))
    again = store.append(_batch(["b", "c", "d", "d"]))
    assert (first.stored, first.duplicates) == (3, 0)
    assert (again.stored, again.duplicates) == (1, 3)
    assert store.stats().total == 4


def test_duplicates_inside_one_batch_keep_every_distinct_event(store: DuckDBStore):
    result = store.append(_batch(["a", "b", "a", "c", "b", "d"]))
    assert (result.stored, result.duplicates) == (4, 2)
    ids = store.query("SELECT event_id FROM events ORDER BY event_id").column(0).to_pylist()
    assert ids == ["a", "b", "c", "d"]


def test_stats_shape(store: DuckDBStore):
    store.append(_batch(["a", "b", "c"], ["process", "network", "process"]))
    assert store.stats().as_dict() == {
        "total": 3, "by_source": {"agent": 3}, "by_class": {"network": 1, "process": 2},
        "rejected": 0,
    }  # fmt: skip


def test_events_filter_by_time_class_entity_source(store: DuckDBStore):
    store.append(_batch([f"e{i}" for i in range(6)], ["process", "file"] * 3))
    got = store.events(EventFilter(classes=("process",), entity_id="host-0"))
    assert got.column("event_id").to_pylist() == ["e0", "e2", "e4"]
    late = store.events(EventFilter(start=datetime(2024, 1, 1, 0, 3, tzinfo=UTC), limit=2))
    assert late.column("event_id").to_pylist() == ["e3", "e4"]
    assert store.events(EventFilter(source="cloudtrail")).num_rows == 0


def test_rejected_kept_once(store: DuckDBStore):
    rows = [Rejected.of(SourcePosition("f.json", line=3, record=3), "malformed JSON", b"{")]
    assert store.append_rejected(rejected_table(rows, "cloudtrail")) == 1
    assert store.append_rejected(rejected_table(rows, "cloudtrail")) == 0
    assert store.rejected().column("line").to_pylist() == [3]


def test_file_store_persists(tmp_path: Path):
    path = tmp_path / "sub" / "k.duckdb"
    s = DuckDBStore(path)
    s.append(_batch(["a"]))
    s.close()
    s = DuckDBStore(path)
    assert s.stats().total == 1
    s.close()


def test_newer_schema_version_is_refused(tmp_path: Path):
    path = tmp_path / "k.duckdb"
    s = DuckDBStore(path)
    s.query("UPDATE kestrel_meta SET value = '999' WHERE key = 'schema_version'")
    s.close()
    with pytest.raises(Exception, match="schema version 999"):
        DuckDBStore(path)


def test_open_store_names_the_unknown_scheme():
    with pytest.raises(ConfigError, match="sqlite"):
        open_store("sqlite://kestrel.db")
