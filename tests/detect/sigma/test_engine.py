"""The engine's own steps before any rule runs: which rows each logsource gets (dispatch by
reader, channel and EventID) and which batch columns it converts at all."""

from __future__ import annotations

import polars as pl
from tests.detect.sigma.conftest import batch_of, rule_yaml, sysmon

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_text
from kestrel.detect.sigma.frame import ROW

_DET = "    sel:\n        TargetObject|contains: 'kestrel'\n    condition: sel"


def _engine() -> SigmaEngine:
    texts = [
        rule_yaml(_DET, cat).replace("11111111", f"1111111{n}")
        for n, cat in enumerate(["registry_event", "registry_set", "process_creation"])
    ]
    rules, issues = compile_rules(load_text("\n---\n".join(texts)).rules, "raise")
    assert not issues
    return SigmaEngine(rules)


def test_each_logsource_gets_exactly_its_rows_in_order() -> None:
    # Sysmon 12 / 13 / 14 interleaved with process creations and another channel's 13:
    # registry_event (12-14) takes three EventIDs' groups, merged back into row order;
    # registry_set only the 13s of Sysmon's channel.
    codes = [13, 1, 12, 14, 13, 1, 12, 13, 14, 1, 13, 12]
    records = [sysmon(c, n, TargetObject="HKLM\\kestrel") for n, c in enumerate(codes, 1)]
    records.append(sysmon(13, 50, channel="Other/Operational", TargetObject="HKLM\\kestrel"))
    engine = _engine()
    events = pl.from_arrow(batch_of(records))
    assert isinstance(events, pl.DataFrame)
    channel = pl.col("channel").str.to_lowercase().alias("__channel")
    events = events.with_row_index(ROW).with_columns(channel)
    got = {engine.dispatches[k].key: rows.to_list() for k, rows in engine._parts(events)}
    want: dict[str, list[int]] = {}
    for row, source, chan, code in events.select(ROW, "source", "__channel", "event_code").rows():
        for d in engine.dispatches:
            if d.accepts(source, chan, code):
                want.setdefault(d.key, []).append(row)
    assert got == want
    assert got["windows/registry_event/*"] == [0, 2, 3, 4, 6, 7, 8, 10, 11]
    assert got["windows/registry_set/*"] == [0, 4, 7, 10]
    assert got["windows/process_creation/*"] == [1, 5, 9]


def test_only_the_columns_rules_read_are_converted() -> None:
    engine = _engine()
    # TargetObject is the registry_key column; Image of process creation is not read here
    assert {"registry_key", "raw", "source", "channel", "event_code"} <= engine.columns
    assert "process_path" not in engine.columns
    assert "cloud_account" not in engine.columns
    records = [sysmon(13, 1, TargetObject="HKLM\\Kestrel"), sysmon(13, 2, TargetObject="x")]
    found = sorted(engine.match(batch_of(records)).iter_rows())
    assert found == [(0, 0), (1, 0)]
