"""Sigma engine throughput beside pySigma → SQLite, one query per rule (the Zircolite way).

Events: Sysmon-shaped records built from the real samples' shapes: every Sysmon event of the
EVTX-ATTACK-SAMPLES and SigmaHQ regression EVTX files is a template; a generated event takes a
template's EventID and field set and draws each field's value from the pool of values that
field has across all templates of that EventID (real values, recombined). ``--unique``
distinct events are generated and tiled up to ``--events`` (setup time, not measured).

Rules: every rule of the SigmaHQ zip whose logsource product is ``windows`` (the whole
Windows set, not a sample). Both engines see the same dispatch (EventID / channel per
logsource), so the comparison is of matching, not of which events each looks at.

SQLite is one query per rule over a table of the first ``--sqlite-events`` events (a full scan
per rule: its cost is linear in events, so events/s is comparable); running it over all
1,000,000 would take most of an hour. The per-rule agreement is measured on those events.

    .venv/bin/python bench/sigma.py                      # 1,000,000 events
    .venv/bin/python bench/sigma.py --events 100000      # quicker
"""

# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `sigma` package (pySigma); run as a script, its folder comes
# first on sys.path and would shadow that package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import random
import re
import resource
import sqlite3
import statistics
import tempfile
import time
import zipfile
from collections import defaultdict
from typing import Any

import msgspec
import pyarrow as pa
from evtx import PyEvtxParser
from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.collection import SigmaCollection

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_rules
from kestrel.detect.sigma.pipelines import FIELD_MAPS, SYSMON_IDS, Dispatch
from kestrel.events import Batch, event_id, make_batch

SYSMON = "Microsoft-Windows-Sysmon/Operational"
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
RULES = DATA / "sigma" / "sigma_rules_windows_cloud.zip"
OTRF = DATA / "otrf_security_datasets" / "atomic" / "windows"
SAMPLES = [DATA / "evtx_attack_samples" / "evtx_attack_samples.zip",
           DATA / "sigma" / "sigma_regression_data.zip"]  # fmt: skip


def templates() -> list[dict[str, Any]]:
    """(EventID, EventData) of every Sysmon record in the sample EVTX files."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for archive in SAMPLES:
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    if name.endswith(".evtx"):
                        z.extract(name, tmp)
        for path in Path(tmp).rglob("*.evtx"):
            out += _sysmon_records(path)
    return out


def _sysmon_records(path: Path) -> list[dict[str, Any]]:
    found = []
    try:
        for rec in PyEvtxParser(str(path)).records_json():
            event: dict[str, Any] = msgspec.json.decode(rec["data"])["Event"] if rec else {}
            data = event.get("EventData")
            if event["System"].get("Channel") == SYSMON and isinstance(data, dict):
                found.append({"id": int(event["System"]["EventID"]), "data": data})
    except (OSError, RuntimeError):
        pass
    return found


# NXLog envelope keys in the OTRF records; everything else is Sysmon's own EventData.
_NXLOG = {"@timestamp", "@version", "Message", "EventID", "SourceName", "TimeCreated", "Hostname",
          "Task", "Level", "Keywords", "Channel", "ProviderGuid", "Version", "Opcode",
          "OpcodeValue", "RecordNumber", "ExecutionProcessID", "ExecutionThreadID", "Domain",
          "AccountName", "UserID", "AccountType", "Category", "Severity", "SeverityValue",
          "EventReceivedTime", "SourceModuleName", "SourceModuleType", "host", "port", "tags",
          "ThreadID", "EventTime", "ProcessID"}  # fmt: skip


def otrf_templates() -> list[dict[str, Any]]:
    """(EventID, EventData) of the OTRF Sysmon events: mostly benign background activity."""
    out = []
    for archive in sorted(OTRF.rglob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                for line in z.read(name).splitlines():
                    rec = msgspec.json.decode(line) if line.strip() else {}
                    if rec.get("SourceName") == "Microsoft-Windows-Sysmon":
                        data = {k: v for k, v in rec.items() if k not in _NXLOG}
                        out.append({"id": int(rec["EventID"]), "data": data})
    return out


def generate(shapes: list[dict[str, Any]], n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` events: a template's EventID and fields, values drawn per (EventID, field)."""
    rng = random.Random(seed)
    pools: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for t in shapes:
        for k, v in t["data"].items():
            pools[(t["id"], k)].append(v)
    out = []
    for i in range(n):
        t = rng.choice(shapes)
        data = {k: rng.choice(pools[(t["id"], k)]) for k in t["data"]}
        data["ProcessId"] = rng.randint(100, 65000)
        out.append({"id": t["id"], "data": data, "host": f"ws{i % 500:03d}"})
    return out


def kestrel_batch(events: list[dict[str, Any]], start: int) -> Batch:
    """Events as a Kestrel batch: ``raw`` in the EVTX JSON shape, mapped columns filled."""
    by_id = {i: FIELD_MAPS.get(c, {}) for c, ids in reversed(SYSMON_IDS.items()) for i in ids}
    cols: dict[str, list[Any]] = defaultdict(lambda: [None] * len(events))
    for j, e in enumerate(events):
        system = {"EventID": e["id"], "Channel": SYSMON, "Computer": e["host"],
                  "EventRecordID": start + j,
                  "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}}  # fmt: skip
        raw = msgspec.json.encode({"Event": {"System": system, "EventData": e["data"]}})
        for name, value in (("event_id", event_id("evtx", raw)), ("raw", raw.decode()),
                            ("event_code", e["id"]), ("host", e["host"]),
                            ("entity_id", e["host"])):  # fmt: skip
            cols[name][j] = value
        for field, column in by_id.get(e["id"], {}).items():
            if e["data"].get(field) is not None and cols[column][j] is None:
                cols[column][j] = str(e["data"][field])
    n = len(events)
    constants = {"source": "evtx", "channel": SYSMON, "class": "other", "entity_type": "host"}
    data: dict[str, Any] = {**cols, **{k: [v] * n for k, v in constants.items()}}
    data["time"] = pa.array([1_700_000_000_000_000 + start + i for i in range(n)], pa.int64())
    return make_batch(data, n)


def measure_kestrel(engine: SigmaEngine, batches: list[Batch]) -> tuple[float, int, list[Any]]:
    """Seconds for all batches, matches found, and the match tables (for agreement)."""
    t = time.perf_counter()
    found = [engine.match(b) for b in batches]
    return time.perf_counter() - t, sum(f.height for f in found), found


def micro_batch_ms(engine: SigmaEngine, batch: Batch, size: int = 10_000) -> float:
    """Median latency of one ``size``-event micro-batch, in milliseconds."""
    runs = []
    for k in range(5):
        part = batch.slice(k * size, size)
        t = time.perf_counter()
        engine.match(part)
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def sqlite_table(events: list[dict[str, Any]]) -> sqlite3.Connection:
    """The Zircolite layout: one table ``logs``, one column per source field."""
    con = sqlite3.connect(":memory:")
    con.create_function("REGEXP", 2, _regexp, deterministic=True)
    names = {k for e in events for k in e["data"]} | {"EventID", "Channel", "Computer"}
    fields = sorted({f.lower(): f for f in sorted(names)}.values())  # SQLite names ignore case
    con.execute("CREATE TABLE logs (row_id INTEGER, " + ", ".join(f'"{f}"' for f in fields) + ")")
    rows = [(i, *(_sql_value(e, f) for f in fields)) for i, e in enumerate(events)]
    con.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * (len(fields) + 1))})", rows)
    return con


def _sql_value(e: dict[str, Any], f: str) -> Any:
    extra = {"EventID": e["id"], "Channel": SYSMON, "Computer": e["host"]}
    value = extra.get(f, e["data"].get(f))
    return value if value is None or isinstance(value, int | float) else str(value)


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def sqlite_queries(rules: list[Any], dispatch: dict[str, Dispatch]) -> dict[str, str]:
    """Rule id → one SQLite query (pySigma's SQLite backend), with the same dispatch."""
    backend, out = sqliteBackend(), {}  # type: ignore[no-untyped-call]
    for rule in rules:
        d = dispatch.get(str(rule.id))
        if d is None or d.never:
            continue
        try:
            (sql,) = backend.convert(SigmaCollection([rule]))
        except Exception:  # a rule the backend cannot convert is simply not compared
            continue
        where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else "1=1"
        codes = ", ".join(str(c) for c in sorted(d.codes)) or "EventID"
        out[str(rule.id)] = f"SELECT row_id FROM logs WHERE EventID IN ({codes}) AND ({where})"
    return out


def measure_sqlite(
    con: sqlite3.Connection, queries: dict[str, str]
) -> tuple[float, dict[str, set[int]]]:
    """Seconds for every query once, and rule id → matched row ids."""
    found: dict[str, set[int]] = {}
    t = time.perf_counter()
    for rid, sql in queries.items():
        try:
            found[rid] = {r[0] for r in con.execute(sql)}
        except sqlite3.Error:
            continue
    return time.perf_counter() - t, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--unique", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--sqlite-events", type=int, default=20_000)
    ap.add_argument("--attack-share", type=float, default=0.01)
    args = ap.parse_args()
    t0 = time.perf_counter()
    loaded = load_rules([RULES])
    windows = [r for r in loaded.rules if r.logsource.product == "windows"]
    compiled, issues = compile_rules(windows)
    engine = SigmaEngine(compiled)
    print(f"rules: {len(windows):,} Windows rules, {len(compiled):,} compiled, "
          f"{len(issues)} not; load+compile {time.perf_counter() - t0:.1f} s")  # fmt: skip
    attack, benign = templates(), otrf_templates()
    n_unique = min(args.unique, args.events)
    n_attack = int(n_unique * args.attack_share)
    unique = generate(benign, n_unique - n_attack) + generate(attack, n_attack, seed=8)
    random.Random(9).shuffle(unique)
    print(f"events: {args.events:,} ({len(unique):,} unique, tiled): {args.attack_share:.0%} "
          f"from {len(attack):,} attack-sample Sysmon templates, the rest from "
          f"{len(benign):,} OTRF Sysmon templates")  # fmt: skip
    base = [kestrel_batch(unique[i : i + args.batch], i) for i in range(0, len(unique), args.batch)]
    batches = (base * (args.events // len(unique) + 1))[: -(-args.events // args.batch)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    secs, n_matches, _ = measure_kestrel(engine, batches)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kestrel_eps = args.events / secs
    micro = micro_batch_ms(engine, base[0])
    print(f"kestrel: {secs:.1f} s, {kestrel_eps:,.0f} events/s, {n_matches:,} matches; "
          f"10k micro-batch {micro:.0f} ms; peak RSS {rss1 / 1024:,.0f} MiB "
          f"(+{(rss1 - rss0) / 1024:,.0f} MiB while matching)")  # fmt: skip
    sql_events = unique[: args.sqlite_events]
    con = sqlite_table(sql_events)
    dispatch = {r.meta.id: r.dispatch for r in compiled}
    queries = sqlite_queries(windows, dispatch)
    sql_secs, sql_found = measure_sqlite(con, queries)
    sqlite_eps = len(sql_events) / sql_secs
    print(f"sqlite: {len(sql_found):,} rules as queries over {len(sql_events):,} events: "
          f"{sql_secs:.1f} s, {sqlite_eps:,.0f} events/s")  # fmt: skip
    print(f"ratio: kestrel / sqlite = {kestrel_eps / sqlite_eps:,.1f}x")
    agreement(engine, kestrel_batch(sql_events, 0), sql_found)


def agreement(engine: SigmaEngine, batch: Batch, sql_found: dict[str, set[int]]) -> None:
    """Per rule: do both engines match the same events? Prints the rules that differ."""
    ids = [r.meta.id for r in engine.rules]
    mine: dict[str, set[int]] = defaultdict(set)
    for rule, row in engine.match(batch).iter_rows():
        mine[ids[rule]].add(row)
    differ = {rid: (len(rows), len(mine.get(rid, set())))
              for rid, rows in sql_found.items() if rows != mine.get(rid, set())}  # fmt: skip
    same = len(sql_found) - len(differ)
    print(f"agreement: {same:,} of {len(sql_found):,} rules match the same events")
    for rid, (s, k) in sorted(differ.items()):
        print(f"  differs {rid}: sqlite {s} events, kestrel {k}")


if __name__ == "__main__":
    main()
