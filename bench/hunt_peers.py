"""Kestrel 1.x and 2.x for bench/hunt.py: their virtual environments, data and huntflows.

Each generation gets a virtual environment of its own, made by this bench under
``bench/.peers/`` (ignored by git) and reused while its pins are unchanged, so a re-run
costs no install. The pins are the ones the peers need to run at all: ``pandas<3`` (1.x's
APPLY, and 2.x), ``SQLAlchemy<2.1`` (2.x: otherwise every GET fails with "Not an
executable object: SQLiteCompiler").

* Kestrel 1.x (kestrel-lang 1.7.6) reads the records as one STIX 2.0 bundle (its
  ``file://`` interface), with prefetch switched off for GET and FIND: its fastest setting
  (prefetch re-queries the source for every entity it returns).
* Kestrel 2.x (kestrel-core 2.0.0b0) reads the same records from an SQLite table through
  kestrel-interface-sqlalchemy, named with its default (ECS) field mapping.

Both run `hunt_peer_run.py` inside their environment: the huntflow, then the last DISP's
rows as JSON records (the same output our `kestrel hunt -f json` writes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import venv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / "bench" / ".peers"
RUNNER = ROOT / "bench" / "hunt_peer_run.py"
PINS: dict[str, tuple[str, ...]] = {
    "k1": ("kestrel-lang==1.7.6", "pandas<3"),
    "k2": (
        "--pre",
        "kestrel-core==2.0.0b0",
        "kestrel-interface-sqlalchemy==2.0.0b0",
        "pandas<3",
        "SQLAlchemy<2.1",
    ),
}
# the bench's 10 attributes, as each generation spells them
K1_ATTRS = (
    "pid",
    "name",
    "command_line",
    "x_unique_id",
    "parent_ref.pid",
    "parent_ref.name",
    "x_host",
    "creator_user_ref.account_login",
    "binary_ref.name",
    "first_observed",
)
K2_ATTRS = (
    "pid",
    "name",
    "cmd_line",
    "uid",
    "parent_process.pid",
    "parent_process.name",
    "endpoint.hostname",
    "user.name",
    "file.path",
    "uid",
)


def python(peer: str) -> Path:
    """The peer's interpreter, its environment made (or remade when the pins changed)."""
    home = PEERS_DIR / peer
    marker = home / "kestrel-bench-pins.txt"
    wanted = "\n".join(PINS[peer])
    if not marker.exists() or marker.read_text() != wanted:
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q", *PINS[peer]]
        subprocess.run(pip, check=True)
        marker.write_text(wanted)
    return home / "bin" / "python"


def k1_hunts(bundle: Path) -> dict[str, str]:
    """The bench hunts in Kestrel 1.x: STIX patterns over the bundle."""
    src = f"file://{bundle}"
    attrs = ", ".join(K1_ATTRS)
    return {
        "filter": f"p = GET process FROM {src} WHERE name = 'cmd.exe'\nDISP p ATTR {attrs}",
        "all": f"p = GET process FROM {src} WHERE pid > 0\nDISP p ATTR {attrs}",
        "parents": f"p = GET process FROM {src} WHERE pid > 0\nq = FIND process CREATED p\n"
        f"DISP q ATTR {attrs}",
    }


def k2_hunts() -> dict[str, str]:
    """The bench hunts in Kestrel 2.x: OCSF attributes over the SQLite table. After FIND its
    parents have only the fields its mapping reads from ``process.parent.*`` (and the host):
    it rejects the others (InvalidAttributes), so that DISP shows those four."""
    src = "sqlalchemy://procs"
    attrs = ", ".join(dict.fromkeys(K2_ATTRS))
    return {
        "filter": f"p = GET process FROM {src} WHERE name = 'cmd.exe'\nDISP p ATTR {attrs}",
        "all": f"p = GET process FROM {src} WHERE pid > 0\nDISP p ATTR {attrs}",
        "parents": f"p = GET process FROM {src} WHERE pid > 0\nq = FIND process CREATED p\n"
        "DISP q ATTR pid, name, uid, endpoint.hostname",
    }


def k1_env(work: Path) -> dict[str, str]:
    """Environment for 1.x: a config with prefetch off for GET and FIND."""
    config = work / "k1.yaml"
    config.write_text("prefetch:\n  switch_per_command:\n    get: false\n    find: false\n")
    return {**os.environ, "KESTREL_CONFIG": str(config), "HOME": str(work / "k1home")}


def k2_env(work: Path, db: Path) -> dict[str, str]:
    """Environment for 2.x: the SQLAlchemy interface pointed at the SQLite table."""
    config = work / "k2-sqlalchemy.yaml"
    config.write_text(
        json.dumps(
            {
                "connections": {
                    "bench": {"url": f"sqlite:///{db}", "table_creation_permission": True}
                },
                "datasources": {
                    "procs": {
                        "connection": "bench",
                        "table": "procs",
                        "timestamp": "@timestamp",
                        "timestamp_format": "%Y-%m-%dT%H:%M:%S.%fZ",
                    }
                },
            }
        )
    )
    return {**os.environ, "KESTREL_SQLALCHEMY_CONFIG": str(config), "HOME": str(work / "k2home")}


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _observed(cols: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """One record as STIX 2.0 observed-data: the process, its parent, user and host."""
    proc: dict[str, Any] = {
        "type": "process",
        "pid": cols["process_pid"][i],
        "name": cols["process_name"][i],
        "binary_ref": "4",
        "command_line": cols["process_cmdline"][i],
        "creator_user_ref": "2",
        "x_unique_id": cols["process_guid"][i],
        "x_host": cols["host"][i],
    }
    objects: dict[str, Any] = {
        "0": proc,
        "2": {
            "type": "user-account",
            "account_login": cols["user_name"][i],
            "user_id": cols["user_name"][i],
        },
        "4": {"type": "file", "name": cols["process_name"][i]},
    }
    if cols["parent_pid"][i] is not None:
        proc["parent_ref"] = "1"
        objects["1"] = {
            "type": "process",
            "pid": cols["parent_pid"][i],
            "name": cols["parent_name"][i],
            "x_unique_id": cols["parent_guid"][i],
        }
    t = _time(cols["time"][i])
    return {
        "type": "observed-data",
        "id": f"observed-data--{i:08d}-0000-4000-8000-000000000000",
        "created_by_ref": "identity--bench",
        "created": t,
        "modified": t,
        "first_observed": t,
        "last_observed": t,
        "number_observed": 1,
        "objects": objects,
    }


def write_bundle(cols: dict[str, list[Any]], path: Path) -> None:
    """The records as one STIX bundle, written object by object."""
    identity = {
        "type": "identity",
        "id": "identity--bench",
        "name": "bench",
        "identity_class": "program",
    }
    with path.open("w") as out:
        out.write('{"type": "bundle", "id": "bundle--bench", "spec_version": "2.0", "objects": [')
        out.write(json.dumps(identity))
        for i in range(len(cols["event_id"])):
            out.write(",\n" + json.dumps(_observed(cols, i)))
        out.write("]}\n")


_ECS = {
    "@timestamp": "time",
    "host.hostname": "host",
    "host.id": "host",
    "process.pid": "process_pid",
    "process.entity_id": "process_guid",
    "process.name": "process_name",
    "process.command_line": "process_cmdline",
    "process.executable": "process_path",
    "process.parent.pid": "parent_pid",
    "process.parent.entity_id": "parent_guid",
    "process.parent.name": "parent_name",
    "process.user.name": "user_name",
}


def _ecs_rows(cols: dict[str, list[Any]]) -> Iterator[tuple[Any, ...]]:
    for i in range(len(cols["event_id"])):
        yield tuple(_time(cols[c][i]) if c == "time" else cols[c][i] for c in _ECS.values())


def write_sqlite(cols: dict[str, list[Any]], path: Path) -> None:
    """The records as an SQLite table of ECS-named columns (2.x's default mapping)."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    names = ", ".join(f'"{c}"' for c in _ECS)
    con.execute(f"CREATE TABLE procs ({names})")
    marks = ", ".join("?" for _ in _ECS)
    con.executemany(f"INSERT INTO procs VALUES ({marks})", _ecs_rows(cols))
    con.commit()
    con.close()
