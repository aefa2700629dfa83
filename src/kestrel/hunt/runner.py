"""`kestrel hunt` without the CLI framework: run a huntbook or hunt text, render what it shows.

`kestrel.cli.hunt` declares the command's options with Typer and calls `run`; `kestrel.cli`'s
`main` calls `fast_args` first and, when every argument is one of the forms below, runs the
hunt without importing Typer, Pydantic (Typer builds a Pydantic adapter per option) or the
other commands, which is a fifth of the start-up. Anything else (``--help``, an unknown
option, a repeated one, ``--``) goes to Typer, so the two paths accept the same command line
and give the same result where both accept it:

    kestrel hunt [HUNTBOOK] [-e TEXT | --execute TEXT | --execute=TEXT] [--db DB | --db=DB]
                 [-f FMT | --format FMT | --format=FMT] [-i | --ignore-case]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from kestrel.hunt import ast
    from kestrel.hunt.session import Session
    from kestrel.store import Store

# A terminal table of a million rows helps nobody; JSON output carries every row.
MAX_TABLE_ROWS = 1000

_VALUED = {"-e": "execute", "--execute": "execute", "--db": "db", "-f": "fmt",
           "--format": "fmt"}  # fmt: skip
_FLAGS = {"-i": "ignore_case", "--ignore-case": "ignore_case"}


def fast_args(argv: Sequence[str]) -> dict[str, Any] | None:
    """`run`'s keyword arguments from the words after ``hunt``, or None when the command
    line is not one of the plain forms (then Typer parses it, with its help and errors)."""
    found: dict[str, Any] = {}
    words = list(argv)
    while words:
        word = words.pop(0)
        name, eq, text = word.partition("=")
        value: object = text
        if word.startswith("--") and eq and name in _VALUED:
            key = _VALUED[name]
        elif word in _VALUED and words:
            key, value = _VALUED[word], words.pop(0)
        elif word in _FLAGS:
            key, value = _FLAGS[word], True
        elif not word.startswith("-") and word:
            key, value = "huntbook", Path(word)
        else:
            return None
        if key in found:
            return None
        found[key] = value
    return {"huntbook": found.get("huntbook"), "execute": found.get("execute"),
            "db": found.get("db"), "fmt": found.get("fmt", "table"),
            "ignore_case": bool(found.get("ignore_case", False))}  # fmt: skip


def run(
    huntbook: Path | None,
    execute: str | None,
    db: str | None,
    fmt: str,
    ignore_case: bool,
    console: Console | None = None,
) -> None:
    """Run the hunt over the store (or the files its GETs name) and render what it shows."""
    from kestrel.errors import ConfigError

    if (huntbook is None) == (execute is None):
        raise ConfigError("give a huntbook file or -e 'hunt text' (one of them)")
    if fmt not in ("table", "json"):
        raise ConfigError(f"--format is table or json, not {fmt!r}")
    text = execute if execute is not None else read(huntbook)
    hunt = parsed(text)
    with without_numpy(hunt is not None and sql_only(hunt)):
        _run(text if hunt is None else hunt, db, fmt, ignore_case, console)


def _run(
    hunt: str | ast.Hunt, db: str | None, fmt: str, ignore_case: bool, console: Console | None
) -> None:
    from kestrel.config import default_db
    from kestrel.hunt.session import Session
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        without_progress_bar(store)
        # DISP rows stay in the engine until shown, so render before the session closes
        with Session(store, ignore_case=ignore_case, lazy_display=True) as session:
            displays = session.execute(hunt)
            render(displays, summary(session) if not displays else None, fmt, console)
    finally:
        store.close()


def without_progress_bar(store: Store) -> None:
    """Turn DuckDB's progress bar off on the hunt's connection. DuckDB's Python client has it
    on, and prints it on stdout once a query runs past 2 s: into the JSON or table the hunt
    writes there (a DISP of a million rows at load 9-12 came out with bars inside its JSON)."""
    if store.dialect == "duckdb":
        store.execute("SET enable_progress_bar = false")


def parsed(text: str) -> ast.Hunt | None:
    """The hunt, parsed once for `sql_only` and the session; None when it does not parse
    (the session parses it again and reports the error)."""
    from kestrel.errors import HuntSyntaxError
    from kestrel.hunt.parser import parse

    try:
        return parse(text)
    except HuntSyntaxError:
        return None


def sql_only(hunt: str | ast.Hunt) -> bool:
    """Whether every statement of the hunt runs as SQL in the store and is shown from Arrow
    or DuckDB's JSON: GET from the store or a variable (no SIGMA), FIND, filters, SORT,
    GROUP, JOIN, NEW, COPY, DISP, INFO, DESCRIBE, EXPLAIN. Files (GET FROM, LOAD, SAVE),
    Sigma rules and APPLY go through Polars, pandas or the ingest readers, which may need
    NumPy. False when the text does not parse (the session reports the error)."""
    from kestrel.hunt import ast

    if isinstance(hunt, str):
        found = parsed(hunt)
        if found is None:
            return False
        hunt = found
    plain = (ast.Get, ast.Find, ast.Group, ast.Join, ast.New, ast.Sort, ast.Copy, ast.Merge,
             ast.VarExpr, ast.Disp, ast.Info, ast.Describe, ast.Explain)  # fmt: skip
    defined: set[str] = set()
    for statement in hunt.statements:
        command = statement.command
        if not isinstance(command, plain) or _has_sigma(command):
            return False
        if isinstance(command, ast.Get) and not all(
            name.lower() in ast.STORE_NAMES or name in defined for name in command.sources
        ):
            return False
        if statement.target:
            defined.add(statement.target)
    return True


def _has_sigma(node: object) -> bool:
    """Whether a SIGMA match occurs anywhere in an AST node."""
    from kestrel.hunt import ast
    from kestrel.hunt.node import Node, fields

    if isinstance(node, ast.SigmaMatch):
        return True
    if isinstance(node, tuple):
        return any(_has_sigma(item) for item in node)
    if isinstance(node, Node):
        return any(_has_sigma(getattr(node, name)) for name in fields(node))
    return False


@contextmanager
def without_numpy(active: bool) -> Iterator[None]:
    """Run a hunt of `sql_only` statements in a fresh process without importing NumPy.

    PyArrow imports NumPy whenever it is installed (≈ 0.1 CPU-s, the largest single import of
    `kestrel hunt`), though reading DuckDB's Arrow results and writing them needs none of it.
    Only in a process that has imported neither yet (the `kestrel` command itself): NumPy is
    marked absent while the hunt runs, so PyArrow starts without it, and unmarked afterwards;
    a process that already holds PyArrow or NumPy is left as it is. When the store's modules
    themselves import NumPy (the store's id filter, 64d6979), NumPy is allowed again before
    the hunt runs: the hunt then works, only without the saving."""
    if not active or "numpy" in sys.modules or "pyarrow" in sys.modules:
        yield
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # import numpy -> ImportError
    try:
        if not _store_without_numpy():
            del sys.modules["numpy"]
        yield
    finally:
        if sys.modules.get("numpy", False) is None:
            del sys.modules["numpy"]


def _store_without_numpy() -> bool:
    """Whether the store's modules import while NumPy is marked absent. The import is tried
    before the hunt runs anything, so a failed one leaves nothing half done (Python drops
    the modules whose import failed; the hunt imports them again)."""
    try:
        import kestrel.store  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "numpy":
            raise
        return False
    return True


def read(path: Path | None) -> str:
    """A huntbook's text; a `ConfigError` when it cannot be read."""
    from kestrel.errors import ConfigError

    assert path is not None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read huntbook {path}: {exc.strerror}") from exc


def summary(session: Session) -> list[dict[str, object]]:
    """One row per variable: name, type, entities (shown when a hunt displays nothing)."""
    return [{"variable": name, "type": info.entity_type,
             "entities": session.count(name)}
            for name, info in session.variables.items()]  # fmt: skip


def render(
    displays: Sequence[object],
    summary: list[dict[str, object]] | None,
    fmt: str,
    console: Console | None = None,
) -> None:
    """JSON (every row, streamed) or Rich tables (the first `MAX_TABLE_ROWS` of each)."""
    from kestrel.hunt.display import TableDisplay, TextDisplay, write_json

    if fmt == "json" and summary is None:
        sys.stdout.flush()
        write_json(list(displays), sys.stdout.buffer)  # type: ignore[arg-type]
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
        return
    if fmt == "json":
        print(json.dumps(summary))  # noqa: T201 (the command's output)
        return
    if console is None:
        from rich.console import Console

        console = Console()
    for d in displays:
        if isinstance(d, TableDisplay):
            page, total = d.head(MAX_TABLE_ROWS)
            console.print(rich_table(d.title, page.column_names, page.to_pylist()))
            if total > MAX_TABLE_ROWS:
                console.print(f"… {total - MAX_TABLE_ROWS:,} more rows "
                              "(use LIMIT / OFFSET, or --format json for all)")  # fmt: skip
        elif isinstance(d, TextDisplay):
            console.rule(d.title)
            console.print(d.text, highlight=False, markup=False)
    if summary:
        rows = [dict(s) for s in summary]
        console.print(rich_table("variables", ["variable", "type", "entities"], rows))


def rich_table(title: str, columns: list[str], rows: list[dict[str, object]]) -> object:
    """A Rich table of ``rows`` (values as text, None as empty)."""
    from rich.table import Table

    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table
