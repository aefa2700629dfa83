"""The `kestrel` command. Each command group lives in its own module and registers on `app`;
commands parse arguments, call one library function and render the result with Rich."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

from kestrel import __version__
from kestrel.errors import KestrelError

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    app: typer.Typer
    console: Console
    err_console: Console

# `app`, `console` and `err_console` are made on first use (module `__getattr__` below), so
# that a `kestrel hunt` which `kestrel.hunt.runner` runs directly never imports Typer.


def _make_app() -> typer.Typer:
    import typer

    made = typer.Typer(
        name="kestrel",
        help="Threat detection, hunting and response on one columnar pipeline.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    def _version(value: bool) -> None:
        if value:
            _lazy("console").print(f"kestrel {__version__}")
            raise typer.Exit()

    @made.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """Threat detection, hunting and response on one columnar pipeline."""

    return made


def __getattr__(name: str) -> Any:
    if name == "app":
        made: Any = _make_app()
    elif name in ("console", "err_console"):
        from rich.console import Console

        made = Console(stderr=name == "err_console")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = made
    return made


def _lazy(name: str) -> Any:
    """A module attribute, made by `__getattr__` the first time only."""
    return getattr(sys.modules[__name__], name)


# The command groups, in the order `kestrel --help` lists them. Each module registers its
# commands on `app` when imported; add a new one here (one name, no import-sorting churn).
COMMAND_MODULES: tuple[str, ...] = (
    "ingest", "detect", "sigma", "hunt", "scan", "endpoint",
    "serve", "agent", "playbook", "audit", "distributed",
)  # fmt: skip


# Commands whose module registers them without needing any other command module: running
# one of them imports only that module (`kestrel hunt` starts without asyncio, rich.progress
# and the other modules' option definitions). Anything else (`--help` included) loads all.
ALONE: dict[str, str] = {"hunt": "hunt", "shell": "hunt"}


def _register(argv: list[str] | None = None) -> None:
    # Command modules import heavy libraries (DuckDB, Arrow) lazily inside their commands so
    # that `kestrel --help` starts fast; importing them here only defines the commands.
    args = sys.argv[1:] if argv is None else argv
    first = args[0] if args else None
    if first in ALONE:
        import_module(f"kestrel.cli.{ALONE[first]}")
        return
    for name in COMMAND_MODULES:
        import_module(f"kestrel.cli.{name}")


def main() -> None:
    """Entry point: run the app, turning every `KestrelError` into one line and exit code 2."""
    _main()


def console_main() -> None:
    """The installed ``kestrel`` command and ``python -m kestrel``: `main`, except that a
    `kestrel hunt` of the fast path that ran to its end leaves with ``os._exit(0)`` once its
    output is flushed. Why: by then the store is closed and nothing of ours waits for exit
    (no atexit handler, no open file), while the interpreter's teardown of DuckDB's, Arrow's
    and SQLGlot's modules costs 60-80 ms of CPU, about an eighth of a hunt's start-up.
    `main` (what tests call in-process) returns normally."""
    if _main():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _main() -> bool:
    """Run the command line; True when a hunt ran through the fast path."""
    try:
        if _fast():
            return True
        _run_app()
    except KestrelError as exc:
        _lazy("err_console").print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    return False


def _fast() -> bool:
    """`kestrel hunt` with plain arguments runs without Typer (see `kestrel.hunt.runner`)."""
    if sys.argv[1:2] != ["hunt"]:
        return False
    from kestrel.hunt.runner import fast_args, run

    kwargs = fast_args(sys.argv[2:])
    if kwargs is None:
        return False
    run(**kwargs)
    return True


def _run_app() -> None:
    import typer

    _register()
    try:
        _lazy("app")(standalone_mode=False)
    except KestrelError:
        raise
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        # Typer 0.29 raises its own copy of click's exceptions (`typer._click`), which are
        # not the installed click's classes: recognised by what they offer
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise
