"""Hunt benchmark: Kestrel's hunting language against Kestrel 1.x and 2.x on the same records.

Three hunts over N process records (N = 100,000 and 1,000,000):

* ``filter``: GET the 1 % of processes named ``cmd.exe``, DISP 10 attributes;
* ``all``: GET every process, DISP 10 attributes;
* ``parents``: GET every process, FIND their parents, DISP 10 attributes.

Each hunt runs as its own ``kestrel hunt`` process, so the wall time includes start-up; peak
memory is that process's max RSS (GNU time ``%M``). Numbers taken on a shared machine are
noisy: run it on a quiet one before quoting them.

Not built yet: running the same hunts in Kestrel 1.x (STIX bundle, prefetch off) and 2.x
(SQLite through kestrel-interface-sqlalchemy, with ``pandas<3`` and ``SQLAlchemy<2.1``) in
virtual environments of their own, and printing the ratios (see bench/RESULTS.md, "Hunt").

    python bench/hunt.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "out" / "hunt"  # ignored by git
ATTRS = ("pid", "name", "command_line", "uid", "parent_pid", "parent_name", "host",
         "user_name", "path", "first_observed")  # fmt: skip
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
        cols["host"].append(f"host{i % 20}")
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


def build_store(n: int, path: Path) -> None:
    """A Kestrel store holding the records."""
    sys.path.insert(0, str(ROOT / "src"))
    import pyarrow as pa

    from kestrel.events import make_batch
    from kestrel.store import DuckDBStore

    cols = records(n)
    cols_any: dict[str, Any] = dict(cols)
    cols_any["time"] = pa.array(cols["time"], pa.timestamp("us", "UTC"))
    cols_any["class"] = ["process"] * n
    cols_any["source"] = ["bench"] * n
    cols_any["raw"] = ["{}"] * n
    store = DuckDBStore(path)
    store.append(make_batch(cols_any, n))
    store.close()


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one process.

    Peak memory comes from GNU time's ``%M``: a forked child's own ``ru_maxrss`` starts from
    the parent's high-water mark (this bench holds the records), so ``wait4`` overstates it.
    """
    with tempfile.NamedTemporaryFile("w+") as mem, tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", mem.name, *cmd], stdout=out,
                              stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed: {done.stderr}")
        out.seek(0)
        return wall, int(mem.read().strip().splitlines()[-1]) / 1024, out.read()


def run_ours(n: int, db: Path) -> list[Run]:
    """The three hunts through `kestrel hunt` (JSON output, all rows)."""
    runs = []
    for name, text in HUNTS.items():
        hunt = text.format(attrs=", ".join(ATTRS))
        cmd = [sys.executable, "-m", "kestrel", "hunt", "--db", str(db), "-f", "json", "-e", hunt]
        wall, peak, out = measure(cmd)
        runs.append(Run("kestrel", name, n, wall, peak, len(json.loads(out)[0]["rows"])))
    return runs


def startup() -> tuple[float, float]:
    """`kestrel hunt` start-up: a hello-world hunt (NEW + DISP), best of 5."""
    cmd = [sys.executable, "-m", "kestrel", "hunt", "--db", ":memory:", "-f", "json", "-e",
           "n = NEW process ['a']\nDISP n"]  # fmt: skip
    best = min((measure(cmd) for _ in range(5)), key=lambda r: r[0])
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    wall, peak = startup()
    print(f"kestrel hunt start-up (hello world, best of 5): {wall:.3f} s, {peak:.0f} MB")
    print(f"{'tool':8} {'hunt':8} {'records':>9} {'wall s':>8} {'peak MB':>8} {'rows':>9}")
    for n in args.sizes:
        db = WORK / f"hunt_{n}.duckdb"
        if not db.exists():
            build_store(n, db)
        for r in run_ours(n, db):
            print(
                f"{r.tool:8} {r.hunt:8} {r.n:>9,} {r.wall_s:>8.2f} {r.peak_mb:>8.0f} {r.rows:>9,}"
            )


if __name__ == "__main__":
    main()
