"""Hunts over the API: run hunt text through `kestrel.hunt.session.Session` against the
server's store and answer what it displays as JSON (the JSON route and the dashboard's hunt
console share `run_hunt`).

Why a guard: on a laptop `kestrel hunt` may read and write any file the user can, but a hunt
sent to the server runs as the server. So a server hunt reads the store only: no ``FROM``
file sources, no ``LOAD`` / ``SAVE`` / ``APPLY`` and Sigma rules by id (not by path). Why a
cap: a DISP of every entity would be one huge answer; each table carries its total instead.
"""

from __future__ import annotations

from typing import Any

import duckdb

from kestrel.api.deps import ApiState
from kestrel.errors import HuntError, HuntSyntaxError, KestrelError
from kestrel.hunt import ast
from kestrel.hunt.display import Display, TableDisplay
from kestrel.hunt.parser import parse
from kestrel.hunt.session import Session
from kestrel.hunt.sources import is_store

MAX_ROWS = 1000
_FILE_COMMANDS = (ast.Load, ast.Save, ast.Apply)


class HuntRunError(Exception):
    """A hunt that cannot run, with where (line, column; 0 when unknown) and what was
    expected: the API answers it 422, the dashboard shows it under the text area."""

    def __init__(self, message: str, line: int = 0, column: int = 0, hint: str = "",
                 expected: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.line, self.column = message, line, column
        self.hint, self.expected = hint, expected

    def as_json(self) -> dict[str, Any]:
        """The 422 body (`kestrel.api.schemas.HuntProblem`)."""
        return {"detail": self.message, "line": self.line, "column": self.column,
                "hint": self.hint, "expected": list(self.expected)}  # fmt: skip


def run_hunt(state: ApiState, text: str, max_rows: int = 100) -> list[dict[str, Any]]:
    """Run ``text`` over the store; every display as ``{"title", "columns", "rows",
    "total", "truncated"}`` (tables) or ``{"title", "text"}`` (text). Raises `HuntRunError`."""
    try:
        hunt = parse(text)
        _check_server_safe(hunt)
        with state.lock, Session(state.store, lazy_display=True) as session:
            # lazy DISP rows live in the session: render them before it closes
            return [_render(d, max_rows) for s in hunt.statements for d in session.run(s)]
    except HuntError as exc:
        raise _failure(exc) from None
    except (KestrelError, duckdb.Error) as exc:  # a source or engine error the hunt caused
        raise HuntRunError(str(exc).splitlines()[0][:500]) from None


def _failure(exc: HuntError) -> HuntRunError:
    expected = exc.expected if isinstance(exc, HuntSyntaxError) else ()
    return HuntRunError(exc.message, exc.line, exc.col, exc.hint, expected)


def _check_server_safe(hunt: ast.Hunt) -> None:
    """Refuse what would touch the server's files (see the module docstring)."""
    defined: set[str] = set()
    for statement in hunt.statements:
        command = statement.command
        where = statement.span
        if isinstance(command, _FILE_COMMANDS):
            name = type(command).__name__.upper()
            raise HuntError(f"{name} is not allowed in a hunt sent to the server "
                            "(it reads the store only)", where.line, where.col)  # fmt: skip
        if isinstance(command, ast.Get):
            _check_get(command, defined)
        if statement.target is not None:
            defined.add(statement.target)


def _check_get(get: ast.Get, defined: set[str]) -> None:
    for source in get.sources:
        if not (is_store(source) or source in defined):
            raise HuntError(f"FROM {source}: a hunt sent to the server reads the store or "
                            "its own variables only", get.span.line, get.span.col)  # fmt: skip
    if get.where is not None:
        _check_sigma(get.where.expr)


def _check_sigma(expr: ast.Expr) -> None:
    if isinstance(expr, ast.BoolOp):
        _check_sigma(expr.left)
        _check_sigma(expr.right)
    elif isinstance(expr, ast.SigmaMatch) and _looks_like_path(expr.rule):
        raise HuntError("SIGMA takes a rule id here, not a path", expr.span.line, expr.span.col)


def _looks_like_path(rule: str) -> bool:
    return any(c in rule for c in "/\\~") or rule.lower().endswith((".yml", ".yaml", ".zip"))


def _render(display: Display, max_rows: int) -> dict[str, Any]:
    """One display as JSON; a table keeps its first ``max_rows`` rows and its total."""
    if not isinstance(display, TableDisplay):
        return {"title": display.title, "text": display.text}
    page, total = display.head(max_rows)
    shown = TableDisplay(display.title, page).as_json()
    return {**shown, "total": total, "truncated": total > page.num_rows}
