"""Intake throughput through ``POST /api/v1/events``: concurrent senders on loopback.

A `kestrel serve` process (its own interpreter, over a fresh DuckDB file) takes agent
envelopes as JSON Lines from ``--senders`` processes, each sending ``--batches`` requests of
``--batch`` events over one keep-alive connection. Every event is distinct, so every one is
stored (the store's count is checked at the end). Bodies are built before the clock starts.

    .venv/bin/python bench/api.py                       # 4 senders x 50 batches x 1,000
    .venv/bin/python bench/api.py --gzip --batches 25
    .venv/bin/python bench/api.py --detect-every 2     # with detection on intake running
    .venv/bin/python bench/api.py --no-spool           # answer after the DuckDB commit
    .venv/bin/python -m bench.api --parse-only         # the request-body parse alone, no server

Prints events/s end to end (first request sent until every event is in the store: with the
spool the last answer comes before the last append; it fails unless the store then holds
exactly the events sent, no fewer, no more), the request latency p50 / p99 / max,
and the server's CPU time per event (user + system, all its threads), which says more than
wall time on a machine others are loading, and the load generator's CPU time (the senders'
own, apart from the server's: on a 2-core box they share the cores).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# The spool's appends come at most a few seconds apart (its linger): a count that has not
# moved for this long will not reach the total, so the run stops and fails.
STALLED_SECONDS = 20.0


def envelope(sender: int, i: int) -> bytes:
    """One agent process-start envelope, unique per (sender, i)."""
    rec = {"agent_id": f"bench-{sender}", "event_type": "process",
           "timestamp": 1714570867000 + i, "payload": {
               "action": "start", "pid": 1000 + i % 30000, "ppid": 1,
               "name": "python3", "exe": "/usr/bin/python3.11",
               "cmdline": ["python3", "-m", "worker", f"--job={sender}-{i}"],
               "username": "svc", "hostname": f"host-{sender}"}}  # fmt: skip
    return json.dumps(rec, separators=(",", ":")).encode()


def bodies(sender: int, batches: int, size: int, zipped: bool) -> list[bytes]:
    out = []
    for b in range(batches):
        lines = b"\n".join(envelope(sender, b * size + i) for i in range(size)) + b"\n"
        out.append(gzip.compress(lines, 1) if zipped else lines)
    return out


def sender(port: int, token: str, payloads: list[bytes], start: Any, q: Any) -> None:
    """Send every payload in turn on one connection; report per-request latencies."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    start.wait()
    cpu0 = time.process_time()
    lat = []
    for body in payloads:
        t = time.perf_counter()
        conn.request("POST", "/api/v1/events", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        lat.append(time.perf_counter() - t)
        if resp.status != 200:
            raise SystemExit(f"HTTP {resp.status}: {data[:300]!r}")
    q.put((lat, time.perf_counter(), time.process_time() - cpu0))


def serve(db: str, port: int, detect_every: float, spool: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KESTREL_API_SPOOL": "1" if spool else "0"}
    proc = subprocess.Popen([PY, "-m", "kestrel", "serve", "--db", db, "--port", str(port),
                             "--detect-every", str(detect_every)],
                            stdout=subprocess.DEVNULL, cwd=ROOT, env=env)  # fmt: skip
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def token(db: str) -> str:
    out = subprocess.run([PY, "-m", "kestrel", "token", "create", "--role", "agent",
                          "--name", "bench", "--db", db], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout.strip()


def stored(port: int, tok: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/readyz", headers={"Authorization": f"Bearer {tok}"})
    return int(json.loads(c.getresponse().read())["events"])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--batches", type=int, default=50, help="requests per sender")
    ap.add_argument("--batch", type=int, default=1000, help="events per request")
    ap.add_argument("--gzip", action="store_true", help="gzip each body (level 1)")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument(
        "--no-spool",
        action="store_true",
        help="answer after the DuckDB commit, not after the spool (the old path)",
    )
    ap.add_argument("--detect-every", type=float, default=0.0,
                    help="the server's detection interval (default 0: intake alone)")  # fmt: skip
    ap.add_argument("--parse-only", action="store_true",
                    help="time `parse_body` on one bench body here (CPU per event)")  # fmt: skip
    args = ap.parse_args()
    if args.parse_only:
        parse_only(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        tok = token(db)
        server = serve(db, args.port, args.detect_every, not args.no_spool)
        try:
            run(args, tok, server.pid)
        finally:
            server.terminate()
            server.wait(30)


def parse_only(args: argparse.Namespace) -> None:
    """The server's parse of one request body (``parse_body``, format sniffed as a client
    that names none gets) timed alone: CPU seconds of this process, ``--batches`` repeats."""
    from kestrel.api.intake import parse_body

    body = bodies(0, 1, args.batch, args.gzip)[0]
    parse_body(body, "auto", "bench", args.batch)  # imports and caches warmed
    per_event = []
    for _ in range(args.batches):
        c = time.process_time()
        parsed = parse_body(body, "auto", "bench", args.batch)
        per_event.append((time.process_time() - c) / parsed.read * 1e6)
    assert parsed.batch.num_rows == args.batch and not parsed.rejected
    print(f"parse_body on {args.batch:,}-event bodies, {args.batches} repeats: CPU per event "
          f"median {pct(per_event, 50):.2f} us, min {min(per_event):.2f} us, "
          f"max {max(per_event):.2f} us; load (1 min) {os.getloadavg()[0]:.1f}")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far. Less
    sensitive to other work on the machine than wall time: it counts only this process's
    time on a core, so it shows what each event costs the server."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each of the process's threads so far, by thread id,
    with its name: which thread does the work (the event loop, the request threads, the
    store writer, DuckDB's own) is what tells where to cut."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_report(pid: int, before: dict[int, tuple[str, float]], total: int) -> str:
    """The threads that used the most CPU during the run, in us per event."""
    after = thread_cpu(pid)
    used = sorted(((cpu - before.get(tid, ("", 0.0))[1], tid, name)
                   for tid, (name, cpu) in after.items()), reverse=True)  # fmt: skip
    return "server threads (us per event): " + ", ".join(
        f"{'main' if tid == pid else name}/{tid} {cpu / total * 1e6:.1f}"
        for cpu, tid, name in used[:8]
        if cpu > 0
    )


def run(args: argparse.Namespace, tok: str, server_pid: int) -> None:
    payloads = [bodies(s, args.batches, args.batch, args.gzip) for s in range(args.senders)]
    size = sum(len(b) for p in payloads for b in p)
    ctx = mp.get_context("fork")
    start, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=sender, args=(args.port, tok, p, start, q)) for p in payloads]
    for p in procs:
        p.start()
    time.sleep(0.5)
    cpu0 = cpu_seconds(server_pid)
    threads0 = thread_cpu(server_pid)
    t0 = time.perf_counter()
    start.set()
    results = [q.get(timeout=600) for _ in procs]
    acked = max(end for _, end, _ in results) - t0
    load_start = os.getloadavg()[0]
    total = args.senders * args.batches * args.batch
    in_store = stored(args.port, tok)
    moved = time.perf_counter()  # when the stored count last changed
    while in_store < total and time.perf_counter() - moved < STALLED_SECONDS:  # draining
        time.sleep(0.02)
        now = stored(args.port, tok)
        moved, in_store = (time.perf_counter(), now) if now != in_store else (moved, in_store)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    threads = thread_report(server_pid, threads0, total)
    for p in procs:
        p.join()
    lat = [x for lats, _, _ in results for x in lats]
    loadgen = sum(cpu for _, _, cpu in results)
    print(f"senders {args.senders}, requests {len(lat)} of {args.batch:,} events"
          f"{' (gzip)' if args.gzip else ''}, {size / 1e6:.1f} MB sent, "
          f"{'answered after the DuckDB commit' if args.no_spool else 'spool'}; "
          f"load average (1 min) {load_start:.1f} when the last answer came, "
          f"{os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"events {total:,} in {elapsed:.2f} s: {total / elapsed:,.0f} events/s end to end "
          f"(all in the store); last answer at {acked:.2f} s; in store {in_store:,}")  # fmt: skip
    print(f"server CPU {cpu:.1f} s: {cpu / total * 1e6:.0f} us per event, "
          f"{total / cpu:,.0f} events per server CPU-second; load generator CPU "
          f"{loadgen:.1f} s ({loadgen / total * 1e6:.0f} us per event, its {args.senders} "
          f"senders together)")  # fmt: skip
    print(f"request latency p50 {pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms")  # fmt: skip
    print(threads)
    if in_store != total:  # every event distinct: fewer is a loss, more a duplicate
        raise SystemExit(f"FAILED: {in_store:,} events in the store, {total:,} sent")


if __name__ == "__main__":
    main()
