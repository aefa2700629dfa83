"""Helpers for the Sigma tests: a rule from YAML text, events from Sysmon-shaped dicts, and a
stand-in for the Windows readers (EVTX record dicts → a Kestrel batch) used until those land:
it fills ``raw`` (canonical JSON), the provenance columns and the schema columns that
`pipelines.FIELD_MAPS` reads."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_text
from kestrel.detect.sigma.pipelines import FIELD_MAPS, SYSMON_IDS
from kestrel.events import Batch, event_id, make_batch, parse_times

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def sysmon(code: int, record: int = 1, channel: str = SYSMON, **data: Any) -> dict[str, Any]:
    """One EVTX-shaped record (as the `evtx` package gives it)."""
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": code,
                "EventRecordID": record,
                "Channel": channel,
                "Computer": "ws1",
                "TimeCreated": {"#attributes": {"SystemTime": f"2024-01-01T00:00:{record:02d}Z"}},
            },
            "EventData": data,
        }
    }


def rule_yaml(detection: str, category: str = "process_creation", extra: str = "") -> str:
    """A minimal rule around a detection block (indented by 4)."""
    return (
        "title: Test rule\nid: 11111111-2222-3333-4444-555555555555\nlevel: high\n"
        "tags:\n    - attack.execution\n    - attack.t1059.001\n"
        f"logsource:\n    product: windows\n    category: {category}\n"
        f"detection:\n{detection}\n{extra}"
    )


Match = Callable[..., list[int]]


@pytest.fixture
def match() -> Match:
    """``match(detection_yaml, events, category=...)`` → the record ids the rule fires on."""

    def run(detection: str, events: list[dict[str, Any]], category: str = "process_creation"):
        rules, issues = compile_rules(load_text(rule_yaml(detection, category)).rules, "raise")
        assert not issues
        batch: Batch = batch_of(events)
        found = SigmaEngine(rules).match(batch).get_column("__row").to_list()
        return [events[i]["Event"]["System"]["EventRecordID"] for i in found]

    return run


_BY_ID: dict[int, dict[str, str]] = {}
for _cat, _ids in SYSMON_IDS.items():
    for _i in _ids:
        _BY_ID.setdefault(_i, FIELD_MAPS.get(_cat, {}))


def evtx_records(path: Path) -> list[dict[str, Any]]:
    """The records of an EVTX file, as the `evtx` package decodes them."""
    from evtx import PyEvtxParser

    records: list[dict[str, Any]] = []
    for r in PyEvtxParser(str(path)).records_json():
        if r is not None:
            records.append(json.loads(r["data"]))
    return records


def batch_of(records: Iterable[Mapping[str, Any]]) -> Batch:
    """A batch of EVTX-shaped records (``{"Event": {"System": …, "EventData": …}}``)."""
    cols: dict[str, list[Any]] = {}
    rows = list(records)
    for n, rec in enumerate(rows):
        for name, value in _row(rec).items():
            cols.setdefault(name, [None] * n).append(value)
        for values in cols.values():
            if len(values) < n + 1:
                values.append(None)
    if rows:
        cols["time"] = parse_times(cols["time"])[0]
    return make_batch(cols, len(rows))


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    raw = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
    system: dict[str, Any] = rec["Event"]["System"]
    data = rec["Event"].get("EventData") or {}
    channel = system.get("Channel")
    found: Any = system.get("EventID")
    code = int(found["#text"] if isinstance(found, dict) else found)
    out = {
        "event_id": event_id("evtx", raw.encode()),
        "time": system["TimeCreated"]["#attributes"]["SystemTime"],
        "class": "other",
        "source": "evtx",
        "source_event": f"{channel}:{code}",
        "channel": channel,
        "provider": system["Provider"]["#attributes"].get("Name"),
        "event_code": code,
        "host": system.get("Computer"),
        "entity_type": "host",
        "entity_id": system.get("Computer"),
        "raw": raw,
    }
    mapping = _BY_ID.get(code, {}) if channel == SYSMON else {}
    if channel == "Security" and code == 4688:
        mapping = FIELD_MAPS["process_creation"]
    for field, column in mapping.items():
        if isinstance(data, dict) and data.get(field) is not None and column not in out:
            out[column] = str(data[field])
    return out


@pytest.fixture
def winlog() -> Callable[[Iterable[Mapping[str, Any]]], Batch]:
    """EVTX-shaped records → a batch (the stand-in reader above)."""
    return batch_of


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """``event(code, record, **EventData)`` → one Sysmon-shaped record."""
    return sysmon


@pytest.fixture
def evtx_reader() -> Callable[[Path], Batch]:
    """EVTX file → batch, through the stand-in reader (until Kestrel's `evtx` reader lands)."""
    return lambda path: batch_of(evtx_records(path))
