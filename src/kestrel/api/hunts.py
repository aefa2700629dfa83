"""Hunts over the API: run hunt text through `kestrel.hunt.session.Session` against the
server's store and answer what it displays as JSON (the JSON route and the dashboard's hunt
console share `run_hunt`).

Why a guard: on a laptop `kestrel hunt` may read and write any file the user can, but a hunt
sent to the server runs as the server. So a server hunt reads the store only: no ``FROM``
file sources, no ``LOAD`` / ``SAVE`` / ``APPLY`` and Sigma rules by id (not by path). Why a
cap: a DISP of every entity would be one huge answer; each table carries its total instead.

Why its own connection and a time limit: a hunt may scan the whole store for seconds. On
the server's one connection it held the store lock that intake appends under, so every
agent waited for the hunt. Over DuckDB a hunt now runs on a cursor of its own (DuckDB runs
it beside the appends, on a snapshot), and a timer interrupts it after
``ApiSettings.hunt_seconds``: the client gets a 422 with ``reason: time_limit``. Over
PostgreSQL a hunt gets a second connection (`PostgresStore.cursor`) and the timer cancels
its running statement (a cancel request, `PostgresStore.interrupt`). A store with neither
runs hunts under the lock, and the limit is then checked between statements only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import duckdb

from kestrel.api.deps import ApiState
from kestrel.errors import HuntError, HuntSyntaxError, KestrelError
from kestrel.hunt import ast
from kestrel.hunt.display import Display, TableDisplay
from kestrel.hunt.parser import parse
from kestrel.hunt.session import Session
from kestrel.hunt.sources import is_store
from kestrel.store import DuckDBStore, Store

if TYPE_CHECKING:
    from kestrel.store.postgres import PostgresStore

MAX_ROWS = 1000
_FILE_COMMANDS = (ast.Load, ast.Save, ast.Apply)


class HuntRunError(Exception):
    """A hunt that cannot run, with where (line, column; 0 when unknown) and what was
    expected: the API answers it 422, the dashboard shows it under the text area."""

    def __init__(self, message: str, line: int = 0, column: int = 0, hint: str = "",
                 expected: tuple[str, ...] = (),
                 reason: Literal["invalid", "time_limit"] = "invalid") -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.line, self.column = message, line, column
        self.hint, self.expected, self.reason = hint, expected, reason

    def as_json(self) -> dict[str, Any]:
        """The 422 body (`kestrel.api.schemas.HuntProblem`)."""
        return {"detail": self.message, "line": self.line, "column": self.column,
                "hint": self.hint, "expected": list(self.expected),
                "reason": self.reason}  # fmt: skip


def run_hunt(
    state: ApiState, text: str, max_rows: int = 100, seconds: float | None = None
) -> list[dict[str, Any]]:
    """Run ``text`` over the store; every display as ``{"title", "columns", "rows",
    "total", "truncated"}`` (tables) or ``{"title", "text"}`` (text). Stopped after
    ``seconds`` (default ``state.settings.hunt_seconds``). Raises `HuntRunError`."""
    limit = state.settings.hunt_seconds if seconds is None else seconds
    try:
        hunt = parse(text)
        _check_server_safe(hunt)
    except HuntError as exc:
        raise _failure(exc) from None
    with _reader(state) as store:
        deadline = Deadline(store, limit)
        try:
            # stored results off: a server hunt only reads the store (and its DISP pages
            # are capped, a top-N the engine does without the full sort)
            with Session(store, lazy_display=True, stored_results=False) as session:
                shown: list[dict[str, Any]] = []
                for statement in hunt.statements:
                    # lazy DISP rows live in the session: render them before it closes
                    shown.extend(_render(d, max_rows) for d in session.run(statement))
                    deadline.check()
                return shown
        except HuntError as exc:
            raise _failure(exc) from None
        except (KestrelError, duckdb.Error) as exc:  # a source or engine error of the hunt
            if deadline.expired:
                raise deadline.error() from None
            raise HuntRunError(str(exc).splitlines()[0][:500]) from None
        finally:
            deadline.cancel()


@contextmanager
def _reader(state: ApiState) -> Iterator[Store]:
    """The store a hunt reads: a connection of its own (intake goes on beside it; the
    `Deadline` interrupts that connection, never the shared one), else the shared one under
    the store lock."""
    store = state.store
    if isinstance(store, DuckDBStore):
        with state.lock:  # opening a DuckDB cursor uses the shared connection for a moment
            cursor: Store = store.cursor()
    elif _is_postgres(store):
        cursor = store.cursor()  # a second connection: opening it touches nothing shared
    else:
        with state.lock:
            yield store
        return
    try:
        yield cursor
    finally:
        cursor.close()


def _is_postgres(store: Store) -> TypeGuard[PostgresStore]:
    """Whether ``store`` is the PostgreSQL store, without importing psycopg for a server
    that does not use it."""
    return type(store).__name__ == "PostgresStore" and store.dialect == "postgres"


class Deadline:
    """Interrupts ``store``'s running query after ``seconds`` (from a timer thread), and
    says whether it did. A store without ``interrupt`` is only checked between statements."""

    def __init__(self, store: Store, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._store = store
        self._lock = threading.Lock()
        self._over = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._over:  # the hunt ended as the timer fired: nothing to stop
                return
            self.expired = True
            stop = getattr(self._store, "interrupt", None)
            if callable(stop):
                stop()

    def check(self) -> None:
        """Raise the time-limit error when the limit has passed (between statements)."""
        if self.expired:
            raise self.error()

    def cancel(self) -> None:
        """The hunt is over: the timer must not interrupt anything after this."""
        with self._lock:
            self._over = True
        self._timer.cancel()

    def error(self) -> HuntRunError:
        return HuntRunError(
            f"hunt stopped: over the time limit of {self.seconds:g} s",
            hint="narrow it (a time range, WHERE, LIMIT) or ask an admin to raise the limit",
            reason="time_limit",
        )


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
