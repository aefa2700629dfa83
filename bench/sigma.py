"""Sigma engine throughput beside pySigma → SQLite, one query per rule (the Zircolite way).

Events: Sysmon-shaped records built from the real samples' shapes: every Sysmon event of the
EVTX-ATTACK-SAMPLES and SigmaHQ regression EVTX files is a template; a generated event takes a
template's EventID and field set and draws each field's value from the pool of values that
field has across all templates of that EventID (real values, recombined). ``--unique``
distinct events are generated and tiled up to ``--events`` (setup time, not measured).

Rules: every rule of the SigmaHQ zip whose logsource product is ``windows`` (the whole
Windows set, not a sample). Both engines see the same dispatch (EventID / channel per
logsource), so the comparison is of matching, not of which events each looks at.

SQLite is one query per rule over an in-memory table of the same events in the same order
(all of them by default; ``--sqlite-events N``: the first N only, a full scan per rule being
linear in events). The per-rule agreement is measured on those events: Kestrel's matches are
the ones of the timed run, so nothing is matched twice. Progress goes to stderr.

``--skip-sqlite``: Kestrel's figures only. ``--micro-only``: only the latency of
10,000-event micro-batches (wall and CPU, median of ``--micro-runs`` batches, each a
different slice of the first batch), no 1M run, no SQLite.

    .venv/bin/python -m bench.sigma                      # 1,000,000 events, SQLite on all
    .venv/bin/python -m bench.sigma --events 100000      # quicker
    .venv/bin/python -m bench.sigma --micro-only --events 100000 --unique 100000
"""

# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `sigma` package (pySigma); run as a script, its folder comes
# first on sys.path and would shadow that package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import random
import resource
import sqlite3
import statistics
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec
from evtx import PyEvtxParser

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_rules
from kestrel.eval.sigma_sqlite import compare, run_queries, sqlite_queries, sqlite_table
from kestrel.events import Batch
from kestrel.ingest.framing import RawRecords
from kestrel.ingest.windows import normalize

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
    """Events as Kestrel's `evtx` reader stores them: the EVTX JSON record through the same
    Windows normalizer (columns, ``raw``, ids), so the engine sees what production sees."""
    run = RawRecords("bench")
    for j, e in enumerate(events):
        stamp = f"2024-01-01T00:00:00.{(start + j) % 1_000_000:06d}Z"
        system = {"EventID": e["id"], "Channel": SYSMON, "Computer": e["host"],
                  "EventRecordID": start + j, "TimeCreated": {"#attributes": {"SystemTime": stamp}},
                  "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}}  # fmt: skip
        run.raws.append(msgspec.json.encode({"Event": {"System": system, "EventData": e["data"]}}))
        run.lines.append(None)
        run.numbers.append(j)
    return normalize(run, evtx_only=True).batch


def flat(e: dict[str, Any]) -> dict[str, Any]:
    """An event as SQLite's ``logs`` table sees it."""
    return {**e["data"], "EventID": e["id"], "Channel": SYSMON, "Computer": e["host"]}


def measure_kestrel(engine: SigmaEngine, batches: list[Batch]) -> tuple[float, int, list[Any]]:
    """Seconds for all batches, matches found, and the match tables (for agreement)."""
    t = time.perf_counter()
    found = [engine.match(b) for b in batches]
    return time.perf_counter() - t, sum(f.height for f in found), found


def micro_batch_ms(
    engine: SigmaEngine, batch: Batch, size: int = 10_000, runs: int = 5
) -> tuple[float, float, int]:
    """Median latency of one ``size``-event micro-batch: (wall ms, CPU ms, matches of all).
    Each run is a different slice of ``batch`` (wrapping round); CPU counts every thread."""
    wall, cpu, found = [], [], 0
    for k in range(runs):
        part = batch.slice((k * size) % max(batch.num_rows - size + 1, 1), size)
        t, c = time.perf_counter(), time.process_time()
        found += engine.match(part).height
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu), found


def progress(label: str) -> Callable[[int, int], None]:
    """A progress printer for ``label`` (stderr, about every 5 %)."""
    t0, last = time.perf_counter(), [-1]

    def show(done: int, total: int) -> None:
        step = done * 20 // max(total, 1)
        if step != last[0] or done == total:
            last[0] = step
            secs = time.perf_counter() - t0
            print(f"  {label}: {done:,}/{total:,} ({secs:.0f} s)", file=sys.stderr, flush=True)

    return show


def measure_sqlite(
    con: sqlite3.Connection, queries: dict[str, str]
) -> tuple[float, dict[str, set[int]]]:
    """Seconds for every query once, and rule id → matched row ids."""
    t = time.perf_counter()
    found = run_queries(con, queries, progress("sqlite queries"))
    return time.perf_counter() - t, found


def load() -> str:
    """``uptime``'s load averages, printed with every figure (the machine is shared)."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--unique", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--sqlite-events", type=int, default=0, help="0: all --events")
    ap.add_argument("--attack-share", type=float, default=0.01)
    ap.add_argument("--micro-only", action="store_true")
    ap.add_argument("--micro-runs", type=int, default=5)
    ap.add_argument("--skip-sqlite", action="store_true", help="Kestrel's figures only")
    args = ap.parse_args()
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, {load()}")
    t0 = time.perf_counter()
    loaded = load_rules([RULES])
    windows = [r for r in loaded.rules if r.logsource.product == "windows"]
    compiled, issues = compile_rules(windows)
    engine = SigmaEngine(compiled)
    print(f"rules: {len(windows):,} Windows rules, {len(compiled):,} compiled, "
          f"{len(issues)} not; load+compile+engine {time.perf_counter() - t0:.1f} s")  # fmt: skip
    attack, benign = templates(), otrf_templates()
    n_unique = min(args.unique, args.events)
    n_attack = int(n_unique * args.attack_share)
    unique = generate(benign, n_unique - n_attack) + generate(attack, n_attack, seed=8)
    random.Random(9).shuffle(unique)
    print(f"events: {args.events:,} ({len(unique):,} unique, tiled): {args.attack_share:.0%} "
          f"from {len(attack):,} attack-sample Sysmon templates, the rest from "
          f"{len(benign):,} OTRF Sysmon templates")  # fmt: skip
    starts = range(0, len(unique), args.batch)
    base = [kestrel_batch(unique[i : i + args.batch], i) for i in starts]
    if args.micro_only:
        engine.match(base[0].slice(0, 1000))  # warm-up (first-call costs, thread pool)
        wall, cpu, hits = micro_batch_ms(engine, base[0], runs=args.micro_runs)
        print(f"micro-batch: 10,000 events, median of {args.micro_runs}: {wall:.0f} ms wall, "
              f"{cpu:.0f} ms CPU, {hits:,} matches in all; {load()}")  # fmt: skip
        return
    n_batches = -(-args.events // args.batch)
    order = [k % len(base) for k in range(n_batches)]
    batches = [base[k] for k in order]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    secs, n_matches, found = measure_kestrel(engine, batches)
    cpu = time.process_time() - cpu0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kestrel_eps = args.events / secs
    wall_ms, cpu_ms, _ = micro_batch_ms(engine, base[0], runs=args.micro_runs)
    print(f"kestrel: {secs:.1f} s ({cpu:.1f} s CPU), {kestrel_eps:,.0f} events/s, "
          f"{args.events / cpu:,.0f} events per CPU-second, {n_matches:,} matches; "
          f"10k micro-batch {wall_ms:.0f} ms ({cpu_ms:.0f} ms CPU); peak RSS "
          f"{rss1 / 1024:,.0f} MiB (+{(rss1 - rss0) / 1024:,.0f} MiB while matching); "
          f"{load()}")  # fmt: skip
    if args.skip_sqlite:
        return
    # SQLite sees the same events in the same order as the timed batches.
    flats = [flat(e) for e in unique]
    n_sql = min(args.sqlite_events or args.events, args.events)
    records = [flats[starts[k] + j] for k in order for j in range(base[k].num_rows)][:n_sql]
    con = sqlite_table(records, progress=progress("sqlite table"))
    dispatch = {r.meta.id: r.dispatch for r in compiled}
    queries = sqlite_queries(windows, dispatch)
    cpu0 = time.process_time()
    sql_secs, sql_found = measure_sqlite(con, queries)
    sql_cpu = time.process_time() - cpu0
    con.close()
    sqlite_eps = n_sql / sql_secs
    print(f"sqlite: {len(sql_found):,} rules as queries over {n_sql:,} events: "
          f"{sql_secs:.1f} s ({sql_cpu:.1f} s CPU), {sqlite_eps:,.0f} events/s, "
          f"{n_sql / sql_cpu:,.0f} events per CPU-second; {load()}")  # fmt: skip
    print(
        f"ratio: kestrel / sqlite = {kestrel_eps / sqlite_eps:,.1f}x wall-clock, "
        f"{(args.events / cpu) / (n_sql / sql_cpu):,.1f}x per CPU-second"
    )
    offsets = [sum(b.num_rows for b in batches[:k]) for k in range(len(batches))]
    agreement(engine, found, offsets, records, queries, sql_found)


def agreement(
    engine: SigmaEngine,
    found: list[Any],
    offsets: list[int],
    records: list[dict[str, Any]],
    queries: dict[str, str],
    sql_found: dict[str, set[int]],
) -> None:
    """Per rule: do both engines match the same events (Kestrel's matches of the timed run,
    batch row → position in the whole run)? Differences are checked again on a normalized
    table (case, types: see `kestrel.eval.sigma_sqlite`)."""
    ids = [r.meta.id for r in engine.rules]
    mine: dict[str, set[int]] = defaultdict(set)
    for table, offset in zip(found, offsets, strict=True):
        for rule, row in table.iter_rows():
            if offset + row < len(records):
                mine[ids[rule]].add(offset + row)
    result = compare(mine, records, queries, sql_found, progress("normalized table"))
    print(f"agreement over {len(records):,} events: {len(result.same):,} of {len(sql_found):,} "
          f"rules match the same events; {len(result.explained)} differ by case / type only, "
          f"{len(result.unexplained)} otherwise")  # fmt: skip
    for label, rules in (("case/type", result.explained), ("UNEXPLAINED", result.unexplained)):
        for rid, (s, k) in sorted(rules.items()):
            print(f"  {label} {rid}: sqlite {s} events, kestrel {k}")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, {load()}")


if __name__ == "__main__":
    main()
