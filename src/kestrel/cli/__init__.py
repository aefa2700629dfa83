"""The `kestrel` command. Each command group lives in its own module and registers on `app`;
commands parse arguments, call one library function and render the result with Rich."""

from __future__ import annotations

import sys
from importlib import import_module

import typer
from rich.console import Console

from kestrel import __version__
from kestrel.errors import KestrelError

app = typer.Typer(
    name="kestrel",
    help="Threat detection, hunting and response on one columnar pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"kestrel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Threat detection, hunting and response on one columnar pipeline."""


# The command groups, in the order `kestrel --help` lists them. Each module registers its
# commands on `app` when imported; add a new one here (one name, no import-sorting churn).
COMMAND_MODULES: tuple[str, ...] = (
    "ingest", "detect", "sigma", "hunt", "scan", "endpoint",
    "serve", "agent", "playbook", "audit", "distributed",
)  # fmt: skip


def _register() -> None:
    # Command modules import heavy libraries (DuckDB, Arrow) lazily inside their commands so
    # that `kestrel --help` starts fast; importing them here only defines the commands.
    for name in COMMAND_MODULES:
        import_module(f"kestrel.cli.{name}")


def main() -> None:
    """Entry point: run the app, turning every `KestrelError` into one line and exit code 2."""
    _register()
    try:
        app(standalone_mode=False)
    except KestrelError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
