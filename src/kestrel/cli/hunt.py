"""`kestrel hunt FILE.hf` / `kestrel hunt -e '…'`: run a huntbook, show what it displays.

The work is in `kestrel.hunt.runner`, which `kestrel.cli.main` also calls directly (without
Typer) when the command line is a plain one; the options here are the reference."""

from __future__ import annotations

from pathlib import Path

import typer

from kestrel.cli import app, console
from kestrel.hunt.runner import MAX_TABLE_ROWS, render

__all__ = ["MAX_TABLE_ROWS", "hunt", "shell"]


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
    from kestrel.hunt.runner import run

    run(huntbook, execute, db, fmt, ignore_case, console)


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
            Shell(session, lambda shown: render(shown, None, "table", console), say).loop(lines)
    finally:
        store.close()
