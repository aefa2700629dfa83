"""Row-for-row check of the bench hunts: ours against Kestrel 2.x, on the attributes both show.

Each side's rows become tuples of the shared attributes (2.x's OCSF names mapped to ours),
NULL-only rows dropped, and the two multisets compared. 2.x returns one row per distinct
projection of the matching records, not per entity: where a process's attributes differ
across records it shows several rows. The bench records give each process one record, so
the sets must be equal; any difference is reported with its size and an example.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

# our attribute → 2.x's, for the GET hunts (filter, all) and the parents (FIND) hunt
GET_ATTRS = {"pid": "pid", "name": "name", "command_line": "cmd_line", "uid": "uid",
             "parent_pid": "parent_process.pid", "parent_name": "parent_process.name",
             "host": "endpoint.hostname"}  # fmt: skip
PARENT_ATTRS = {"pid": "pid", "name": "name", "uid": "uid"}


def _rows(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    return data[0]["rows"] if isinstance(data[0], dict) and "rows" in data[0] else data


def _norm(value: Any) -> Any:
    """2.x's pandas turns an integer column with NULLs into floats."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _tuples(rows: list[dict[str, Any]], names: list[str]) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        values = tuple(_norm(row.get(n)) for n in names)
        if any(v is not None for v in values):
            out[values] += 1
    return out


def check(work: Path, n: int, hunt: str) -> str:
    """``same, N rows`` or what differs between our rows and 2.x's for one hunt."""
    attrs = PARENT_ATTRS if hunt == "parents" else GET_ATTRS
    ours_path, theirs_path = work / f"kestrel-{n}-{hunt}.json", work / f"k2-{n}-{hunt}.json"
    if not theirs_path.exists():
        return "2.x did not finish"
    ours = _tuples(_rows(ours_path), list(attrs))
    theirs = _tuples(_rows(theirs_path), list(attrs.values()))
    if ours == theirs:
        return f"same, {sum(ours.values()):,} rows"
    only_ours, only_theirs = ours - theirs, theirs - ours
    example = next(iter(only_ours or only_theirs))
    return (f"differ: {sum(only_ours.values()):,} rows only ours, "
            f"{sum(only_theirs.values()):,} only 2.x, e.g. {example}")  # fmt: skip
