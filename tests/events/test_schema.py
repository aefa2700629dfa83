import doctest
from pathlib import Path

import pyarrow as pa
import pytest

import kestrel.events.ids
import kestrel.findings.model
from kestrel.events import COLUMNS, EVENT_CLASSES, REQUIRED, SCHEMA, make_batch, parse_times
from kestrel.events.doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def test_schema_doc_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/schema.md is stale: run `python -m kestrel.events.doc docs/schema.md`"
    )


def test_every_column_documented_and_unique():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    assert all(len(c.doc) > 10 for c in COLUMNS)
    assert set(REQUIRED) <= set(names)


def test_column_classes_are_known():
    for col in COLUMNS:
        assert col.classes == ("*",) or set(col.classes) <= set(EVENT_CLASSES), col.name


def test_make_batch_fills_nulls_and_rejects_unknown_columns():
    batch = make_batch({"event_id": ["a"], "class": ["process"]}, 1)
    assert batch.schema == SCHEMA
    assert batch.column("host").null_count == 1
    with pytest.raises(KeyError, match="not_a_column"):
        make_batch({"not_a_column": [1]}, 1)


def test_parse_times_reports_bad_values():
    times, bad = parse_times(["2024-07-31T12:46:41Z", "garbage", "2020-09-21 23:18:41.269"])
    assert bad == [1]
    assert times.type == pa.timestamp("us", tz="UTC")
    assert times[2].as_py().isoformat() == "2020-09-21T23:18:41.269000+00:00"


@pytest.mark.parametrize("module", [kestrel.events.ids, kestrel.findings.model])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
