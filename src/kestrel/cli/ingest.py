"""`kestrel ingest`, `kestrel stats`, `kestrel rejected`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kestrel.cli import app, console
from kestrel.config import default_db

if TYPE_CHECKING:  # imported lazily at run time: `kestrel --help` must start fast
    from kestrel.ingest import IngestReport

DB_OPTION = typer.Option(
    None, "--db", help="Store: a DuckDB file (default ~/.kestrel/kestrel.duckdb)."
)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files, folders, zip or gz archives."),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="auto, agent, cloudtrail, evtx, winlog-json, metrics."
    ),
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    enrich: bool = typer.Option(
        False, "--enrich", help="Enrich before storing (IOC, GeoIP, ...; see --policy)."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (`enrich` section)."),
) -> None:
    """Read telemetry into the store; print what was read, stored, duplicate and rejected."""
    from kestrel.cli.detect import enrich_stage
    from kestrel.ingest import ingest_paths
    from kestrel.store import open_store

    stage = enrich_stage(policy) if enrich else None

    store = open_store(db or default_db())
    try:
        with _progress() as bar:
            task = bar.add_task("ingest", total=None)
            report = ingest_paths(
                paths,
                store,
                fmt,
                progress=lambda name, n: bar.update(task, advance=n, description=_short(name)),
                transform=stage,
            )
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps(_report_json(report)))
    else:
        _print_report(report)


def _short(name: str) -> str:
    return name if len(name) <= 48 else "…" + name[-47:]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _report_json(report: IngestReport) -> dict[str, object]:
    total = report.total()
    return {
        "read": total.read, "stored": total.stored, "duplicates": total.duplicates,
        "rejected": total.rejected, "sources": report.sources,
        "by_format": {k: asdict(v) for k, v in report.by_format.items()},
        "by_class": {f"{fmt}/{cls}": n for (fmt, cls), n in sorted(report.by_class.items())},
        "skipped": [{"source": s, "reason": r} for s, r in report.skipped],
        "rejected_records": [{"position": str(r.position), "reason": r.reason}
                             for r in report.rejected[:1000]],
    }  # fmt: skip


def _print_report(report: IngestReport) -> None:
    table = Table(title="ingest", show_footer=True)
    total = report.total()
    table.add_column("format", footer="total")
    for col in ("read", "stored", "duplicates", "rejected"):
        table.add_column(col, justify="right", footer=f"{getattr(total, col):,}")
    for fmt, c in sorted(report.by_format.items()):
        table.add_row(
            fmt, *(f"{getattr(c, col):,}" for col in ("read", "stored", "duplicates", "rejected"))
        )
    console.print(table)
    classes = Table(title="events read per source and class")
    for col in ("source", "class", "events"):
        classes.add_column(col, justify="right" if col == "events" else "left")
    for (fmt, cls), n in sorted(report.by_class.items()):
        classes.add_row(fmt, cls, f"{n:,}")
    console.print(classes)
    for r in report.rejected[:20]:
        console.print(
            f"[yellow]rejected[/] {r.position}: {r.reason}", highlight=False, soft_wrap=True
        )
    if len(report.rejected) > 20:
        console.print(f"… and {len(report.rejected) - 20} more (see `kestrel rejected`)")
    if report.skipped:
        console.print(
            f"[dim]skipped {len(report.skipped)} source(s) of unknown format "
            f"(e.g. {report.skipped[0][0]})[/]",
            highlight=False,
        )


@app.command()
def stats(
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Counts of stored events per source and class, and rejected records."""
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        result = store.stats()
    finally:
        store.close()
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    table = Table(title=f"{result.total:,} events, {result.rejected:,} rejected")
    table.add_column("by")
    table.add_column("name")
    table.add_column("events", justify="right")
    for kind, counts in (("source", result.by_source), ("class", result.by_class)):
        for name, n in counts.items():
            table.add_row(kind, name, f"{n:,}")
    console.print(table)


@app.command()
def rejected(
    db: str | None = DB_OPTION,
    limit: int = typer.Option(50, help="How many to show."),
) -> None:
    """Show rejected records with their position and reason."""
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        rows = store.rejected(limit).to_pylist()
    finally:
        store.close()
    for row in rows:
        where = ", ".join(f"{k} {row[k]}" for k in ("line", "record", "offset") if row[k])
        console.print(f"{row['path']} {where}: {row['reason']}", highlight=False, soft_wrap=True)
