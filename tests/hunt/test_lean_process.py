"""The `kestrel hunt` process stays lean: what a SQL-only hunt imports, and NEW's rows.

Start-up is most of a small hunt's time (issue 8: `kestrel hunt` under 0.5 s, 30x Kestrel
2.x at 100,000 records), and most of start-up is imports. These tests fail when a module
that a SQL-only hunt does not need comes back into its process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest

from kestrel.hunt.tables import _cell, rows_table

# Not needed by a hunt whose statements all run as SQL in the store (`runner.sql_only`):
# NumPy/pandas/Polars (marked absent by `runner.without_numpy`), Arrow's Python-object
# inference's dateutil (NEW gives string columns their type), Lark itself (the stand-alone
# parser), Typer/Pydantic/Rich (the fast command line, JSON output).
NOT_IMPORTED = ("numpy", "pandas", "polars", "dateutil", "six", "lark", "regex", "typer",
                "pydantic", "rich", "asyncio")  # fmt: skip

HUNT = (
    "n = NEW process [{'name': 'cmd.exe', 'pid': 4}, {'name': 'x.exe', 'pid': 5}]\n"
    "m = n WHERE name = 'cmd.exe'\n"
    "f = FIND process CREATED m\n"
    "DISP m ATTR name, pid\n"
    "DISP f\n"
)


def test_sql_only_hunt_imports_nothing_it_does_not_need() -> None:
    code = (
        "import sys\nfrom kestrel.cli import main\n"
        "sys.argv = ['kestrel', 'hunt', '--db', ':memory:', '-f', 'json', '-e', sys.argv[1]]\n"
        "try:\n    main()\nfinally:\n"
        f"    print(sorted(m for m in {NOT_IMPORTED!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, HUNT], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown, loaded = out.stdout.strip().splitlines()
    displays = json.loads(shown)
    assert displays[0]["rows"] == [{"name": "cmd.exe", "pid": 4}]
    assert displays[1]["rows"] == []
    assert loaded == "[]"


@pytest.mark.parametrize(
    "rows",
    [
        ["a", "b"],
        [{"name": "a", "pid": 1}, {"name": None}],
        [{"name": None}],
        [{"x": {"a": 1}}, {"x": [1, "b"]}],
        [{"x": True}, {"x": None}],
        [{"x": 1.5}, {"x": 2}],
        [{"x": 1.5}, {"x": None}],
        [{"x": 2**63 - 1}, {"x": -(2**63)}],
        [{"x": 2**63}],
        [{"x": -(2**63) - 1}],
        [{"x": 1}, {"x": True}],
        [{"a": "x", "b": None}, {"b": "y"}],
        [],
    ],
)
def test_new_rows_have_the_types_arrow_infers(rows: list[Any]) -> None:
    # what `rows_table` gave before it named plain columns' types: Arrow's inference
    dicts = [r if isinstance(r, dict) else {"name": r} for r in rows]
    names = list(dict.fromkeys(k for r in dicts for k in r))
    cells = {n: [_cell(r.get(n)) for r in dicts] for n in names}
    try:
        inferred = pa.table(cells) if names else pa.table({"name": pa.array([], pa.string())})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            rows_table(rows)
        return
    table = rows_table(rows)
    assert table.schema == inferred.schema
    assert table.equals(inferred)
    assert table.num_rows == len(rows)


def test_new_rows_of_mixed_types_are_refused_as_arrow_refuses_them() -> None:
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        rows_table([{"x": "a"}, {"x": 1}])
