"""Compile cases (cases/compile.yml): hunt → SQL for DuckDB and PostgreSQL, sqlglot-style.

Each case's DuckDB SQL is also run over the hand-made store, so a case cannot hold SQL the
engine rejects. PostgreSQL runs belong to the `services` tests (not built yet); the text is
checked here. Rewrite the file after a deliberate change with ``--update-golden``-style:
``python -m tests.hunt.test_compile`` (prints the cases).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kestrel.errors import HuntNameError
from kestrel.hunt import ast
from kestrel.hunt.compile import Compiler, VarInfo, sql
from kestrel.hunt.parser import parse
from kestrel.store import DuckDBStore

CASES_FILE = Path(__file__).parent / "cases" / "compile.yml"
NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
PROCESS_COLUMNS = ("_key", "pid", "name", "command_line", "parent_pid", "host",
                   "number_observed", "first_observed", "last_observed")  # fmt: skip
VARS = {"procs": VarInfo("procs", "v_procs", "process", PROCESS_COLUMNS, "events")}


class _Catalog:
    def variable(self, name: str, span: ast.Span) -> VarInfo:
        if name not in VARS:
            raise HuntNameError(f"no variable {name!r}")
        return VARS[name]

    def is_variable(self, name: str) -> bool:
        return name in VARS


def compile_hunt(text: str, dialect: str) -> str:
    statement = parse(text).statements[0]
    compiler = Compiler(_Catalog(), dialect, NOW)
    c = statement.command
    if isinstance(c, ast.Get):
        query = compiler.get(c, "events")
    elif isinstance(c, ast.Find):
        query = compiler.find(c)
    elif isinstance(c, ast.VarExpr):
        query = compiler.filter(c)
    elif isinstance(c, ast.Disp):
        query = compiler.disp(c.expr)
    elif isinstance(c, ast.Group):
        query = compiler.group(c)
    else:
        raise AssertionError(type(c))
    return sql(query, dialect)


CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_compile(case: dict[str, Any]) -> None:
    assert compile_hunt(case["hunt"], "duckdb") == case["duckdb"]
    assert compile_hunt(case["hunt"], "postgres") == case["postgres"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_compiled_sql_runs_on_duckdb(case: dict[str, Any], hunt_store: DuckDBStore) -> None:
    hunt_store.execute(
        "CREATE TEMP TABLE IF NOT EXISTS v_procs AS SELECT 'k' AS _key, 1::BIGINT AS pid, "
        "'cmd.exe' AS name, 'x' AS command_line, 2::BIGINT AS parent_pid, 'h1' AS host, "
        "1::BIGINT AS number_observed, now() AS first_observed, now() AS last_observed"
    )
    hunt_store.query(case["duckdb"])


if __name__ == "__main__":  # regenerate the expected SQL after a deliberate change
    for case in CASES:
        case["duckdb"] = compile_hunt(case["hunt"], "duckdb")
        case["postgres"] = compile_hunt(case["hunt"], "postgres")
    CASES_FILE.write_text(yaml.safe_dump(CASES, sort_keys=False, width=100, allow_unicode=True))
