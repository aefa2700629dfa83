"""`kestrel hunt FILE.hf` / `kestrel hunt -e '…'`: run a huntbook, show what it displays."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from kestrel.cli import app, console

# A terminal table of a million rows helps nobody; JSON output carries every row.
MAX_TABLE_ROWS = 1000


@app.command()
def hunt(
    huntbook: Path | None = typer.Argument(None, help="A huntbook (.hf) to run."),
    execute: str | None = typer.Option(None, "--execute", "-e", help="Hunt text to run."),
    db: str | None = typer.Option(
        None, "--db", help="Store: a DuckDB file (default ~/.kestrel/kestrel.duckdb)."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    ignore_case: bool = typer.Option(
        False, "--ignore-case", "-i", help="String comparisons ignore case."
    ),
) -> None:
    """Run a hunt-flow over the store (or the files its GETs name)."""
    from kestrel.config import default_db
    from kestrel.errors import ConfigError
    from kestrel.hunt.session import Session
    from kestrel.store import open_store

    if (huntbook is None) == (execute is None):
        raise ConfigError("give a huntbook file or -e 'hunt text' (one of them)")
    if fmt not in ("table", "json"):
        raise ConfigError(f"--format is table or json, not {fmt!r}")
    text = execute if execute is not None else _read(huntbook)
    store = open_store(db or default_db())
    try:
        # DISP rows stay in the engine until shown, so render before the session closes
        with Session(store, ignore_case=ignore_case, lazy_display=True) as session:
            displays = session.execute(text)
            _render(displays, _summary(session) if not displays else None, fmt)
    finally:
        store.close()


@app.command()
def shell(
    db: str | None = typer.Option(
        None, "--db", help="Store: a DuckDB file (default ~/.kestrel/kestrel.duckdb)."
    ),
    ignore_case: bool = typer.Option(
        False, "--ignore-case", "-i", help="String comparisons ignore case."
    ),
) -> None:
    """Hunt interactively: history (~/.kestrel/hunt_history), Tab completion, `exit` to leave."""
    from kestrel.config import default_db, home
    from kestrel.hunt.session import Session
    from kestrel.hunt.shell import Shell, candidates, prompts
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        with Session(store, ignore_case=ignore_case, lazy_display=True) as session:
            lines = prompts(home() / "hunt_history", lambda line: candidates(session, line))
            say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
            Shell(session, lambda shown: _render(shown, None, "table"), say).loop(lines)
    finally:
        store.close()


def _read(path: Path | None) -> str:
    from kestrel.errors import ConfigError

    assert path is not None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read huntbook {path}: {exc.strerror}") from exc


def _summary(session: object) -> list[dict[str, object]]:
    from kestrel.hunt.session import Session

    assert isinstance(session, Session)
    return [{"variable": name, "type": info.entity_type,
             "entities": session.count(name)}
            for name, info in session.variables.items()]  # fmt: skip


def _render(displays: Sequence[object], summary: list[dict[str, object]] | None, fmt: str) -> None:
    from kestrel.hunt.display import TableDisplay, TextDisplay, write_json

    if fmt == "json" and summary is None:
        sys.stdout.flush()
        write_json(list(displays), sys.stdout.buffer)  # type: ignore[arg-type]
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
        return
    if fmt == "json":
        print(json.dumps(summary))
        return
    for d in displays:
        if isinstance(d, TableDisplay):
            page, total = d.head(MAX_TABLE_ROWS)
            console.print(_rich_table(d.title, page.column_names, page.to_pylist()))
            if total > MAX_TABLE_ROWS:
                console.print(f"… {total - MAX_TABLE_ROWS:,} more rows "
                              "(use LIMIT / OFFSET, or --format json for all)")  # fmt: skip
        elif isinstance(d, TextDisplay):
            console.rule(d.title)
            console.print(d.text, highlight=False, markup=False)
    if summary:
        rows = [dict(s) for s in summary]
        console.print(_rich_table("variables", ["variable", "type", "entities"], rows))


def _rich_table(title: str, columns: list[str], rows: list[dict[str, object]]) -> object:
    from rich.table import Table

    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table
