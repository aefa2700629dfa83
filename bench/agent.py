"""Agent overhead: the agent's own CPU and memory while the host starts 50 processes a second.

Starts the Kestrel API (uvicorn, in this process, over an in-memory store), the agent as a
separate process (`kestrel agent`, default settings except where named below), and a load
generator that starts ``--rate`` processes per second (``sleep 1``: each lives one second,
so ~rate processes run at once, as on a busy build host). The agent's CPU is its own
user + system time (children included) over the measured window, in % of one core; RSS is
sampled every second and the maximum reported.

Usage: .venv/bin/python -m bench.agent [--seconds 30] [--rate 50]
(as a module: run as a script, bench/sigma.py would shadow the `sigma` package)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import uvicorn

from kestrel.api import ApiSettings, create_app
from kestrel.api.auth import Role, create_token
from kestrel.store import DuckDBStore


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(store: DuckDBStore, port: int):
    app = create_app(ApiSettings(db=":memory:"), store=store)
    state = app.state.kestrel
    with state.lock:
        token, _ = create_token(state.mgmt, Role.AGENT, "bench-agent", agent_id="bench-agent")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, state, token


def _load(rate: int, seconds: float, stop: threading.Event) -> int:
    """Start ``rate`` short-lived processes per second; returns how many were started."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    started, t0, children = 0, time.monotonic(), []
    while not stop.is_set() and time.monotonic() - t0 < seconds:
        due = int((time.monotonic() - t0) * rate)
        while started < due:
            children.append(subprocess.Popen([sleep, "1"]))
            started += 1
        children = [c for c in children if c.poll() is None]
        time.sleep(0.005)
    for c in children:
        c.wait()
    return started


def _measure(agent: psutil.Process, seconds: float, rate: int) -> dict[str, float]:
    cpu0 = agent.cpu_times()
    t0 = time.monotonic()
    rss: list[int] = []
    stop = threading.Event()
    box: list[int] = []
    load = threading.Thread(target=lambda: box.append(_load(rate, seconds, stop)))
    load.start()
    while load.is_alive():
        rss.append(agent.memory_info().rss)
        time.sleep(1)
    wall = time.monotonic() - t0
    cpu1 = agent.cpu_times()
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"wall": wall, "cpu_pct": 100 * used / wall, "rss_max": max(rss) / 2**20,
            "rss_end": rss[-1] / 2**20, "started": box[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=50)
    args = parser.parse_args()
    store, port = DuckDBStore(":memory:"), _port()
    server, state, token = _serve(store, port)
    with tempfile.TemporaryDirectory(prefix="kestrel-bench-agent-") as tmp:
        cmd = [sys.executable, "-m", "kestrel", "agent", "--server", f"http://127.0.0.1:{port}",
               "--token", token, "--state", tmp, "--agent-id", "bench-agent",
               "--watch", tmp]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agent = psutil.Process(proc.pid)
        time.sleep(3)  # start-up (imports) is not steady state
        figures = _measure(agent, args.seconds, args.rate)
        time.sleep(2)  # the last batches
        proc.terminate()
        proc.wait(timeout=30)
    with state.lock:
        sql = ("SELECT count(*) AS n FROM events WHERE class = 'process' "
               "AND activity = 'create' AND process_name = 'sleep'")  # fmt: skip
        seen = store.query(sql).to_pylist()
    server.should_exit = True
    _report(args, figures, int(seen[0]["n"]))


def _report(args: argparse.Namespace, f: dict[str, float], seen: int) -> None:
    print(f"machine: {os.cpu_count()} cores; load: {args.rate} process starts/s for "
          f"{f['wall']:.0f} s ({f['started']:.0f} started)")  # fmt: skip
    print(f"agent CPU: {f['cpu_pct']:.2f} % of one core (target < 3 %)")
    print(f"agent RSS: max {f['rss_max']:.1f} MiB, end {f['rss_end']:.1f} MiB (target < 80 MB)")
    print(f"process starts stored by the server: {seen} of {f['started']:.0f} "
          f"({100 * seen / max(f['started'], 1):.1f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
