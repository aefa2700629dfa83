"""Helpers for the Sigma tests: a rule from YAML text, and events from Sysmon-shaped dicts
turned into a batch by Kestrel's own Windows normalizer (the code behind the ``evtx`` and
``winlog-json`` readers), in any of the three raw shapes those readers store: EVTX
(``{"Event": {"System", "EventData"}}``), NXLog flat records and Winlogbeat."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import pytest

from kestrel.detect.sigma import SigmaEngine, compile_rules, evaluate, load_text, prefilter
from kestrel.events import Batch
from kestrel.ingest.framing import RawRecords, canonical
from kestrel.ingest.windows import evtx_canonical, normalize

SYSMON = "Microsoft-Windows-Sysmon/Operational"
SHAPES = ("evtx", "nxlog", "winlogbeat")


def sysmon(code: int, record: int = 1, channel: str = SYSMON, **data: Any) -> dict[str, Any]:
    """One EVTX-shaped record (as the `evtx` package gives it)."""
    provider = "Microsoft-Windows-Sysmon" if channel == SYSMON else "Microsoft-Windows-Other"
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": provider}},
                "EventID": code,
                "EventRecordID": record,
                "Channel": channel,
                "Computer": "ws1",
                "TimeCreated": {"#attributes": {"SystemTime": f"2024-01-01T00:00:{record:02d}Z"}},
            },
            "EventData": data,
        }
    }


def as_shape(record: Mapping[str, Any], shape: str) -> dict[str, Any]:
    """The same event in another raw shape: NXLog flat or Winlogbeat."""
    system = record["Event"]["System"]
    data = dict(record["Event"].get("EventData") or {})
    time = system["TimeCreated"]["#attributes"]["SystemTime"]
    provider = system["Provider"]["#attributes"]["Name"]
    if shape == "nxlog":
        head = {"EventID": system["EventID"], "Channel": system["Channel"], "SourceName": provider}
        return {**data, **head, "Hostname": system["Computer"], "@timestamp": time}
    if shape == "winlogbeat":
        winlog = {"event_id": system["EventID"], "channel": system["Channel"],
                  "provider_name": provider, "computer_name": system["Computer"],
                  "event_data": data}  # fmt: skip
        return {"@timestamp": time, "winlog": winlog}
    return dict(record)


def rule_yaml(detection: str, category: str = "process_creation", extra: str = "") -> str:
    """A minimal rule around a detection block (indented by 4)."""
    return (
        "title: Test rule\nid: 11111111-2222-3333-4444-555555555555\nlevel: high\n"
        "tags:\n    - attack.execution\n    - attack.t1059.001\n"
        f"logsource:\n    product: windows\n    category: {category}\n"
        f"detection:\n{detection}\n{extra}"
    )


def batch_of(records: Iterable[Mapping[str, Any]], shape: str = "evtx") -> Batch:
    """EVTX-shaped records → a batch through Kestrel's Windows normalizer, in ``shape``."""
    run = RawRecords("<test>")
    for n, rec in enumerate(records, 1):
        raw = canonical(msgspec.json.encode(as_shape(rec, shape)))
        run.raws.append(evtx_canonical(raw) if shape == "evtx" else raw)
        run.lines.append(None)
        run.numbers.append(n)
    chunk = normalize(run)
    assert not chunk.rejected, chunk.rejected
    return chunk.batch


Match = Callable[..., list[int]]


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    """Every semantics test runs once per raw shape the Windows readers store."""
    return str(request.param)


PATHS = ("polars", "python")


def use_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Force one evaluation path: ``polars`` (plans, ``extract_many``: what many candidates
    get; also every rule's guard checked first and source fields decoded only where rules
    read them, which big logsources get) or ``python`` (predicates, the automaton kept
    between batches: what few get)."""
    few = 0 if path == "polars" else 10**9
    monkeypatch.setattr(evaluate, "PY_CANDIDATES", few)
    monkeypatch.setattr(prefilter, "KEPT_AUTOMATON_ROWS", few)
    monkeypatch.setattr(evaluate, "GUARD_PAIRS", few)
    monkeypatch.setattr(evaluate, "RAW_SUBSET_ROWS", few)


@pytest.fixture(params=PATHS)
def engine_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every semantics test runs on both evaluation paths."""
    use_path(monkeypatch, str(request.param))
    return str(request.param)


@pytest.fixture
def match(shape: str, engine_path: str) -> Match:
    """``match(detection_yaml, events, category=...)`` → the record ids the rule fires on."""

    def run(
        detection: str, events: list[dict[str, Any]], category: str = "process_creation"
    ) -> list[int]:
        rules, issues = compile_rules(load_text(rule_yaml(detection, category)).rules, "raise")
        assert not issues
        found = SigmaEngine(rules).match(batch_of(events, shape)).get_column("__row").to_list()
        return [events[i]["Event"]["System"]["EventRecordID"] for i in found]

    return run


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """``event(code, record, **EventData)`` → one Sysmon-shaped record."""
    return sysmon
