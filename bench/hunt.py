"""Hunt benchmark: Kestrel's hunting language against Kestrel 1.x and 2.x on the same records.

Three hunts over N process records (N = 100,000 and 1,000,000):

* ``filter``: GET the 1 % of processes named ``cmd.exe``, DISP 10 attributes;
* ``all``: GET every process, DISP 10 attributes;
* ``parents``: GET every process, FIND their parents, DISP 10 attributes.

Each hunt runs as its own process, so the wall time includes start-up; peak memory is that
process's max RSS (GNU time ``%M``). Ours is ``kestrel hunt -f json`` over a DuckDB store;
Kestrel 1.x (STIX bundle, prefetch off) and 2.x (SQLite through its SQLAlchemy interface)
run the same hunts in virtual environments this bench makes (`hunt_peers`). The ratios are
the peer's wall time over ours and our peak over the peer's. Every hunt's rows are then
compared with 2.x's, row for row, on the attributes both show (`compare`).

Ours runs cold first (``KESTREL_HUNT_STORED_RESULTS=0``: every hunt builds its entities
from the events; these are the figures compared with the peers), then each hunt three
times in a row with stored results on (`kestrel.hunt.results`): the first DISP notes the
query, the second stores its entities, the third reads them; the third is shown against
the same peer runs as "kestrel-repeat", and its JSON must equal the cold run's byte for
byte (``--cold-only`` skips these runs). Numbers taken on
a shared machine are noisy: the bench prints the load average; quote quiet runs.

    python bench/hunt.py [--sizes 100000 1000000] [--peers k1 k2] [--timeout 900]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench runs as a script
from bench import hunt_compare as compare
from bench import hunt_peers as peers

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "out" / "hunt"  # ignored by git
DATA_VERSION = 2  # bump when `records` changes: cached stores and files are rebuilt
ATTRS = ("pid", "name", "command_line", "uid", "parent_pid", "parent_name", "host",
         "user_name", "path", "first_observed")  # fmt: skip
STORED = "KESTREL_HUNT_STORED_RESULTS"  # 0: our cold runs (`kestrel.hunt.results`)
HUNTS = {
    "filter": "p = GET process WHERE name = 'cmd.exe'\nDISP p ATTR {attrs}",
    "all": "p = GET process\nDISP p ATTR {attrs}",
    "parents": "p = GET process\nq = FIND process CREATED p\nDISP q ATTR {attrs}",
}


@dataclass
class Run:
    """One measured run."""

    tool: str
    hunt: str
    n: int
    wall_s: float
    peak_mb: float
    rows: int
    cpu_s: float = float("nan")  # user + system: what the wall time would be with no load
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # 1-min, when it ended


def records(n: int) -> dict[str, list[Any]]:
    """N process-creation events: a forest where each process's parent is an earlier one
    (every 50th is a root with no parent), 1 % named cmd.exe, on 20 hosts."""
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    cols: dict[str, list[Any]] = {k: [] for k in (
        "event_id", "time", "host", "process_pid", "process_guid", "process_name",
        "process_cmdline", "process_path", "parent_pid", "parent_guid", "parent_name",
        "user_name")}  # fmt: skip
    for i in range(n):
        name = "cmd.exe" if i % 100 == 7 else f"proc{i % 97}.exe"
        parent = None if i % 50 == 0 else max(0, i - 1 - (i * 7919) % 97)
        cols["event_id"].append(f"e{i}")
        cols["time"].append(t0 + timedelta(milliseconds=i))
        # a child runs on its parent's host (a tree per root, the roots over 20 hosts)
        cols["host"].append(f"host{(i // 50) % 20}" if parent is None else cols["host"][parent])
        cols["process_pid"].append(1000 + i)
        cols["process_guid"].append(f"g{i}")
        cols["process_name"].append(name)
        cols["process_cmdline"].append(f"{name} --run {i}")
        cols["process_path"].append(f"C:\\bin\\{name}")
        cols["parent_pid"].append(None if parent is None else 1000 + parent)
        cols["parent_guid"].append(None if parent is None else f"g{parent}")
        pname = (
            None
            if parent is None
            else ("cmd.exe" if parent % 100 == 7 else f"proc{parent % 97}.exe")
        )
        cols["parent_name"].append(pname)
        cols["user_name"].append(f"user{i % 13}")
    return cols


def build_store(n: int, path: Path, cols: dict[str, list[Any]]) -> None:
    """A Kestrel store holding the records."""
    sys.path.insert(0, str(ROOT / "src"))
    import pyarrow as pa

    from kestrel.events import make_batch
    from kestrel.store import DuckDBStore

    cols_any: dict[str, Any] = dict(cols)
    cols_any["time"] = pa.array(cols["time"], pa.timestamp("us", "UTC"))
    cols_any["class"] = ["process"] * n
    cols_any["source"] = ["bench"] * n
    cols_any["raw"] = ["{}"] * n
    store = DuckDBStore(path)
    store.append(make_batch(cols_any, n))
    store.close()


def measure(
    cmd: list[str], out: Path, env: dict[str, str] | None = None, timeout: float | None = None
) -> tuple[float, float, float]:
    """Wall seconds, peak RSS in MB and CPU seconds of one process; stdout goes to ``out``.

    Peak memory comes from GNU time's ``%M``: a forked child's own ``ru_maxrss`` starts from
    the parent's high-water mark (this bench holds the records), so ``wait4`` overstates it.
    """
    with tempfile.NamedTemporaryFile("w+") as mem, out.open("w") as stdout:
        start = time.perf_counter()
        timed = ["/usr/bin/time", "-f", "%M %U %S", "-o", mem.name, *cmd]
        err = _run(timed, stdout, env, timeout)
        wall = time.perf_counter() - start
        if err is not None:
            raise RuntimeError(f"{cmd[:4]} failed: {err[-2000:]}")
        peak, user, system = mem.read().strip().splitlines()[-1].split()
        return wall, int(peak) / 1024, float(user) + float(system)


def _run(
    cmd: list[str], stdout: IO[str], env: dict[str, str] | None, timeout: float | None
) -> str | None:
    """Run in a session of its own, so a timeout kills the hunt under ``time`` too; returns
    stderr when it failed."""
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return err if proc.returncode else None


def run_warm(n: int, db: Path) -> list[Run]:
    """Each hunt three times in a row with stored results on (`kestrel.hunt.results`): the
    first DISP notes the query, the second writes its entities to a table, the third reads
    them. Every run is printed; the third stands for the repeated hunt, and its JSON must
    be byte for byte the cold run's."""
    _clear_stored(db)
    out = []
    for name in HUNTS:
        cmd = hunt_command(name, db)
        cold = WORK / f"kestrel-{n}-{name}.json"
        for k, step in enumerate(("notes", "stores", "reads")):
            dest = WORK / f"kestrel-warm-{n}-{name}.json"
            wall, peak, cpu = measure(cmd, dest, env={**os.environ, STORED: "1"})
            same = dest.read_bytes() == cold.read_bytes()
            print(f"  repeat {k + 1}/3 ({step}) {name:8} {n:>9,}: {wall:.2f} s wall, "
                  f"{cpu:.2f} s CPU, {peak:.0f} MB, load {os.getloadavg()[0]:.1f}, "
                  f"JSON {'same as cold' if same else 'DIFFERS from cold'}",
                  flush=True)  # fmt: skip
            if not same:
                raise RuntimeError(f"stored result of {name} at {n:,} differs from the live one")
        rows = len(json.loads(dest.read_text())[0]["rows"])
        out.append(Run("kestrel-repeat", name, n, wall, peak, rows, cpu))
    _clear_stored(db)
    return out


def hunt_command(name: str, db: Path) -> list[str]:
    """`kestrel hunt` running the hunt ``name`` over ``db``, every DISP row as JSON."""
    hunt = HUNTS[name].format(attrs=", ".join(ATTRS))
    return [sys.executable, "-m", "kestrel", "hunt", "--db", str(db), "-f", "json", "-e", hunt]


def _clear_stored(db: Path) -> None:
    """Drop the bench store's stored hunt results, so that a run is cold."""
    sys.path.insert(0, str(ROOT / "src"))
    from kestrel.hunt.results import StoredResults
    from kestrel.store import DuckDBStore

    store = DuckDBStore(db)
    try:
        StoredResults(store).clear()
    finally:
        store.close()


def run_ours(n: int, db: Path, repeat: int = 1) -> list[Run]:
    """The three hunts through `kestrel hunt` (JSON output, all rows). With ``repeat`` > 1
    each hunt runs that many times, the hunts taking turns (so a burst of load on the shared
    machine falls on all three), every run is printed, and the run of median wall time
    stands for the hunt: one run's figure moves by a third between runs on this machine."""
    measured: dict[str, list[Run]] = {name: [] for name in HUNTS}
    _clear_stored(db)
    cold = {**os.environ, STORED: "0"}  # every run builds its entities from the events
    for k in range(repeat):
        for name in HUNTS:
            out = WORK / f"kestrel-{n}-{name}.json"
            wall, peak, cpu = measure(hunt_command(name, db), out, env=cold)
            rows = len(json.loads(out.read_text())[0]["rows"])
            measured[name].append(Run("kestrel", name, n, wall, peak, rows, cpu))
            if repeat > 1:
                print(f"  run {k + 1}/{repeat} {name:8} {n:>9,}: {wall:.2f} s wall, "
                      f"{cpu:.2f} s CPU, {peak:.0f} MB, load {os.getloadavg()[0]:.1f}",
                      flush=True)  # fmt: skip
    return [median_run(found) for found in measured.values()]


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2]


def peer_inputs(
    peer: str, n: int, cols: dict[str, list[Any]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The peer's hunts and environment, its data written once per size."""
    if peer == "k1":
        bundle = WORK / f"bundle_{n}_v{DATA_VERSION}.json"
        if not bundle.exists():
            peers.write_bundle(cols, bundle)
        return peers.k1_hunts(bundle), peers.k1_env(WORK)
    db = WORK / f"procs_{n}_v{DATA_VERSION}.sqlite"
    if not db.exists():
        peers.write_sqlite(cols, db)
    return peers.k2_hunts(), peers.k2_env(WORK, db)


def run_peer(peer: str, n: int, cols: dict[str, list[Any]], timeout: float) -> list[Run]:
    """The three hunts in one Kestrel generation; a hunt past ``timeout`` is reported so."""
    py = peers.python(peer)
    hunts, env = peer_inputs(peer, n, cols)
    runs = []
    for name, text in hunts.items():
        flow, out = WORK / f"{peer}-{name}.hf", WORK / f"{peer}-{n}-{name}.json"
        flow.write_text(text)
        out.unlink(missing_ok=True)  # a timed-out hunt must not leave an older run's rows
        try:
            wall, peak, cpu = measure(
                [str(py), str(peers.RUNNER), str(flow), str(out)],
                out.with_suffix(".txt"),
                env,
                timeout,
            )
        except subprocess.TimeoutExpired:
            runs.append(Run(peer, name, n, float("inf"), float("nan"), -1))
            continue
        except RuntimeError as exc:  # a peer that fails a hunt is reported, not fatal
            print(f"{peer} {name} {n:,} failed: {str(exc)[-300:]}", flush=True)
            runs.append(Run(peer, name, n, float("nan"), float("nan"), -2))
            continue
        runs.append(
            Run(
                peer, name, n, wall, peak, int(out.with_suffix(".txt").read_text().split()[-1]), cpu
            )
        )
    return runs


def startup(typer: bool = False) -> tuple[float, float, float]:
    """`kestrel hunt` start-up: a hello-world hunt (NEW + DISP), best of 5. With ``typer``,
    a trailing ``--`` sends the same command line through Typer instead of the plain path
    (`kestrel.hunt.runner`), for comparison."""
    cmd = [sys.executable, "-m", "kestrel", "hunt", "--db", ":memory:", "-f", "json", "-e",
           "n = NEW process ['a']\nDISP n", *(["--"] if typer else [])]  # fmt: skip
    best = min((measure(cmd, WORK / "startup.json") for _ in range(5)), key=lambda r: r[0])
    return best[0], best[1], best[2]


def show(runs: list[Run]) -> None:
    """One line per run, with the ratios against ours where both ran (ours cold: every
    hunt builds its entities from the events), then ours repeated (a stored result read)
    against each peer."""
    ours = {(r.hunt, r.n): r for r in runs if r.tool == "kestrel"}
    warm = {(r.hunt, r.n): r for r in runs if r.tool == "kestrel-repeat"}
    _table([r for r in runs if r.tool != "kestrel-repeat"], ours)
    if warm:
        print("repeated over unchanged events (stored result read), against the same peers:")
        _table([r for r in runs if r.tool != "kestrel"], warm)


def _table(runs: list[Run], ours: dict[tuple[str, int], Run]) -> None:
    print(f"{'tool':14} {'hunt':8} {'records':>9} {'wall s':>8} {'CPU s':>7} {'peak MB':>8} "
          f"{'rows':>9} {'x faster':>9} {'mem ratio':>9} {'load':>5}")  # fmt: skip
    for r in runs:
        me = ours.get((r.hunt, r.n))
        peer = not r.tool.startswith("kestrel")
        speed = f"{r.wall_s / me.wall_s:9.1f}" if me and peer else f"{'':9}"
        mem = f"{me.peak_mb / r.peak_mb:9.2f}" if me and peer else f"{'':9}"
        print(f"{r.tool:14} {r.hunt:8} {r.n:>9,} {r.wall_s:>8.2f} {r.cpu_s:>7.2f} "
              f"{r.peak_mb:>8.0f} {r.rows:>9,} {speed} {mem} {r.load:5.1f}",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--peers", nargs="*", default=["k2", "k1"], choices=["k1", "k2"])
    parser.add_argument("--timeout", type=float, default=900, help="seconds per peer hunt")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each of our hunts; median wall shown"
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="skip the repeated (stored result) runs"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}")
    # An installed kestrel has its bytecode compiled (pip compiles on install). A checkout run
    # with PYTHONDONTWRITEBYTECODE=1 (as on the shared machine) has none, and every `kestrel
    # hunt` would compile all of its modules from source again: ≈ 0.3 of 1.2 CPU-s of start-up
    # measured at load 6. Compile them once, as an install would (git ignores __pycache__).
    compileall.compile_dir(ROOT / "src" / "kestrel", quiet=1)
    print(f"kestrel bytecode compiled (PYTHONDONTWRITEBYTECODE="
          f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})")  # fmt: skip
    wall, peak, cpu = startup()
    print(f"kestrel hunt start-up (hello world, best of 5): {wall:.3f} s wall, {cpu:.2f} s CPU, "
          f"{peak:.0f} MB; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    wall, peak, cpu = startup(typer=True)
    print(f"  the same through Typer: {wall:.3f} s wall, {cpu:.2f} s CPU, {peak:.0f} MB; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    runs: list[Run] = []
    for n in args.sizes:
        cols = records(n)
        db = WORK / f"hunt_{n}_v{DATA_VERSION}.duckdb"
        if not db.exists():
            build_store(n, db, cols)
        runs += run_ours(n, db, max(args.repeat, 1))
        if not args.cold_only:
            runs += run_warm(n, db)
        for peer in args.peers:
            runs += run_peer(peer, n, cols, args.timeout)
        show([r for r in runs if r.n == n])
        if "k2" in args.peers:
            for name in HUNTS:
                print(f"rows vs 2.x, {name} {n:,}: {compare.check(WORK, n, name)}", flush=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
