"""The same promises over DuckDB and PostgreSQL (the PostgreSQL half is marked ``services``
and runs in its own database): appends, filters, rejected records, ad-hoc SQL, registered
tables, and the tables that findings, detector state, management data and profiles keep."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from kestrel.errors import ConfigError
from kestrel.eval.cloud import _ingest
from kestrel.eval.datasets import generated
from kestrel.events import SCHEMA, make_batch
from kestrel.hunt.session import Session
from kestrel.ingest.base import Rejected, SourcePosition, rejected_table
from kestrel.pipeline import default_detectors, load_findings, run_detection
from kestrel.store import EventFilter, Store, open_store
from kestrel.store.findings import StateTable
from kestrel.store.management import ManagementStore, TokenRecord
from kestrel.store.profiles import ProfileTable

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _batch(ids: list[str], classes: list[str] | None = None) -> pa.Table:
    n = len(ids)
    return make_batch({
        "event_id": ids,
        "time": pa.array([T0.replace(minute=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "class": classes or ["process"] * n,
        "source": ["agent"] * n,
        "entity_id": [f"host-{i % 2}" for i in range(n)],
        "raw": ["{}"] * n,
    }, n)  # fmt: skip


def test_append_is_idempotent_and_counts_duplicates(any_store: Store):
    first = any_store.append(_batch(["a", "b", "c"]))
    again = any_store.append(_batch(["b", "c", "d", "d"]))
    assert (first.stored, first.duplicates) == (3, 0)
    assert (again.stored, again.duplicates) == (1, 3)
    assert any_store.stats().as_dict() == {
        "total": 4, "by_source": {"agent": 4}, "by_class": {"process": 4}, "rejected": 0,
    }  # fmt: skip


def test_events_filter_by_time_class_entity_source(any_store: Store):
    any_store.append(_batch([f"e{i}" for i in range(6)], ["process", "file"] * 3))
    got = any_store.events(EventFilter(classes=("process",), entity_id="host-0"))
    assert got.column("event_id").to_pylist() == ["e0", "e2", "e4"]
    late = any_store.events(EventFilter(start=T0.replace(minute=3), limit=2))
    assert late.column("event_id").to_pylist() == ["e3", "e4"]
    assert any_store.events(EventFilter(source="cloudtrail")).num_rows == 0


def test_every_value_round_trips(any_store: Store):
    batch = _batch(["x", "y"]).to_pylist()
    batch[0] |= {"process_cmdline": 'a "quoted", multi\nline %s ?', "user_name": "",
                 "process_pid": 4242, "bytes_out": 2**40}  # fmt: skip
    sent = pa.Table.from_pylist(batch, SCHEMA)
    any_store.append(sent)
    assert any_store.events(EventFilter()).to_pylist() == sent.to_pylist()


def test_rejected_kept_once(any_store: Store):
    rows = [Rejected.of(SourcePosition("f.json", line=3, record=3), "malformed JSON", b"{")]
    assert any_store.append_rejected(rejected_table(rows, "cloudtrail")) == 1
    assert any_store.append_rejected(rejected_table(rows, "cloudtrail")) == 0
    assert any_store.stats().rejected == 1
    listed = any_store.rejected(10).to_pylist()
    assert [(r["path"], r["line"], r["reason"]) for r in listed] == [
        (rows[0].position.path, rows[0].position.line, rows[0].reason)
    ]


def test_query_params_percent_and_empty_schema(any_store: Store):
    any_store.append(_batch(["a", "b"]))
    got = any_store.query(
        "SELECT event_id, '100%' AS p FROM events WHERE entity_id = ? AND raw LIKE '{%'",
        ["host-1"],
    )
    assert got.to_pylist() == [{"event_id": "b", "p": "100%"}]
    empty = any_store.query("SELECT time, process_pid FROM events LIMIT 0")
    assert pa.types.is_timestamp(empty.schema.field("time").type)
    assert pa.types.is_integer(empty.schema.field("process_pid").type)


def test_register_shadows_and_unregisters(any_store: Store):
    any_store.register("hunt_ids", pa.table({"id": ["a", "b"], "n": [1, None]}))
    got = any_store.query("SELECT id, n FROM hunt_ids ORDER BY id")
    assert got.to_pylist() == [{"id": "a", "n": 1}, {"id": "b", "n": None}]
    any_store.unregister("hunt_ids")
    with pytest.raises(Exception, match="hunt_ids"):
        any_store.query("SELECT * FROM hunt_ids")


def test_state_and_management_tables(any_store: Store):
    states = StateTable(any_store)
    states.save("gpu", {"m": pa.table({"entity": ["h"], "n": [3]})}, T0)
    assert states.load("gpu")["m"].to_pylist() == [{"entity": "h", "n": 3}]
    states.set_cursor(T0, T0)
    assert states.cursor() == T0
    mgmt = ManagementStore(any_store)
    mgmt.add_token(TokenRecord("t1", "ci", "admin", "h", None, T0, None, False))
    assert mgmt.revoke_token("t1") and mgmt.token("t1").revoked  # type: ignore[union-attr]
    mgmt.set_policy("actions", {"kill": True}, "me")
    assert mgmt.policies() == {"actions": {"kill": True}}


def test_profiles_are_real_tables(any_store: Store):
    profiles = ProfileTable(any_store)
    assert not profiles.exists()
    rows = pa.table({"entity_id": ["h"], "entity_type": ["host"], "events": [3]})
    ops = pa.table({"entity_id": ["h"], "first_seen": [T0]})
    profiles.save({"profiles": rows, "operations": ops})
    assert profiles.one("h")[0] == {"entity_id": "h", "entity_type": "host", "events": 3}


@pytest.mark.slow
def test_detection_and_hunt_run_unchanged(any_store: Store):
    """The embedded runner and the hunting language over this store: same findings as the
    DuckDB reference, and a hunt that finds the generated principals."""
    _ingest(any_store, generated("all", 24, 3).records)
    report = run_detection(any_store, default_detectors(("sigma",)))
    assert report.stored == len(load_findings(any_store)) > 0
    with Session(any_store) as s:
        s.execute("calls = GET cloud-api-call FROM store WHERE operation LIKE 'List%'")
        s.execute("who = FIND cloud-principal CREATED calls")
        assert s.count("calls") > 0
        assert s.count("who") > 0


def test_open_store_by_url(tmp_path):
    with pytest.raises(ConfigError, match="mysql"):
        open_store("mysql://localhost/kestrel")
    assert open_store(tmp_path / "k.duckdb").dialect == "duckdb"
