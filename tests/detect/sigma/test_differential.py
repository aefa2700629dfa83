"""Differential test: the Sigma engine against pySigma's own SQLite backend, every Windows
rule both can run, over the Sysmon events of the SigmaHQ regression EVTX files (attack events:
the rules fire on them). Every rule must match the same events in both, or differ only in
the ways SQLite is known to differ from Sigma (case-sensitive ``=``, typed comparison of
numbers with text), which `kestrel.eval.sigma_sqlite.compare` checks on a normalized table."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests.detect.sigma.conftest import batch_of

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_rules
from kestrel.eval.sigma_sqlite import compare, run_queries, sqlite_queries, sqlite_table


def _records(zip_path: Path, tmp: Path) -> list[dict[str, Any]]:
    from evtx import PyEvtxParser

    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".evtx"))
        z.extractall(tmp, names)
    out = []
    for name in names:
        for rec in PyEvtxParser(str(tmp / name)).records_json():
            doc = json.loads(rec["data"]) if rec else {"Event": {}}
            if isinstance(doc["Event"].get("EventData"), dict):
                out.append(doc)
    return out


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    """The record as SQLite's ``logs`` table sees it: EventData plus EventID / Channel / host."""
    system = doc["Event"]["System"]
    code = system["EventID"]
    code = code["#text"] if isinstance(code, dict) else code
    head = {"EventID": int(code), "Channel": system["Channel"], "Computer": system["Computer"]}
    return {**doc["Event"]["EventData"], **head}


@pytest.mark.datasets
@pytest.mark.slow
def test_engine_agrees_with_pysigma_sqlite(datasets: Path, tmp_path: Path) -> None:
    sigma = datasets / "sigma"
    docs = _records(sigma / "sigma_regression_data.zip", tmp_path)
    loaded = load_rules([sigma / "sigma_rules_windows_cloud.zip"])
    windows = [r for r in loaded.rules if r.logsource.product == "windows"]
    compiled, _ = compile_rules(windows)
    engine = SigmaEngine(compiled)
    mine: dict[str, set[int]] = {}
    for rule, row in engine.match(batch_of(docs)).iter_rows():
        mine.setdefault(compiled[rule].meta.id, set()).add(row)
    records = [_flat(d) for d in docs]
    queries = sqlite_queries(windows, {r.meta.id: r.dispatch for r in compiled})
    found = run_queries(sqlite_table(records), queries)
    result = compare(mine, records, queries, found)
    assert len(found) > 2000  # the backend converts most of the Windows set
    assert sum(1 for rid in result.same if found[rid]) > 150  # and they do fire here
    assert not result.unexplained, result.unexplained
