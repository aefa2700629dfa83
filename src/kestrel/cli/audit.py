"""`kestrel audit verify|show` (the response audit log) and `kestrel quarantine list|restore`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from kestrel.cli import app, console, err_console

audit_app = typer.Typer(help="The response audit log (append-only, hash-chained).")
app.add_typer(audit_app, name="audit")
quarantine_app = typer.Typer(help="Files quarantined by response actions.")
app.add_typer(quarantine_app, name="quarantine")
LOG = typer.Option(None, "--log", help="Audit log (default ~/.kestrel/audit.jsonl).")
FOLDER = typer.Option(None, "--folder", help="Quarantine (default ~/.kestrel/quarantine).")


@audit_app.command("verify")
def verify(
    log: Path | None = LOG,
    head: str | None = typer.Option(None, "--head", help="Expected head hash (truncation)."),
) -> None:
    """Recompute the hash chain; exit 1 and name the first broken line when it fails."""
    from kestrel.respond import AuditLog
    from kestrel.respond.local import default_paths

    path = log or default_paths().audit
    report = AuditLog(path).verify()
    if not report.ok:
        err_console.print(f"[red]broken[/] {path} line {report.line}: {report.problem}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        raise SystemExit(1)
    if head is not None and head != report.head:
        err_console.print(f"[red]head differs[/] {path}: {report.head} (expected {head}); "
                          "records were cut off the end", highlight=False)  # fmt: skip
        raise SystemExit(1)
    console.print(f"[green]ok[/] {path}: {report.records} records, head {report.head}",
                  highlight=False)  # fmt: skip


@audit_app.command("show")
def show(
    log: Path | None = LOG,
    run_id: str | None = typer.Option(None, "--run", help="Only this run."),
    limit: int = typer.Option(50, help="The last N records."),
) -> None:
    """The last records of the audit log."""
    from kestrel.respond import AuditLog
    from kestrel.respond.local import default_paths

    records = [r for r in AuditLog(log or default_paths().audit).records()
               if run_id is None or r["run_id"] == run_id][-limit:]  # fmt: skip
    table = Table(title="audit")
    for col in ("seq", "time", "actor", "event", "run", "data"):
        table.add_column(col)
    for r in records:
        when = datetime.fromtimestamp(r["time"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(r["seq"]), when, r["actor"], r["event"], r["run_id"] or "",
                      json.dumps(r["data"])[:120])  # fmt: skip
    console.print(table)


@quarantine_app.command("list")
def quarantine_list(folder: Path | None = FOLDER) -> None:
    """Quarantined files with their id, original path and hash."""
    from kestrel.respond import Quarantine
    from kestrel.respond.local import default_paths

    table = Table(title="quarantine")
    for col in ("id", "original path", "sha256", "size"):
        table.add_column(col)
    for q in Quarantine(folder or default_paths().quarantine).list():
        table.add_row(q.quarantine_id, q.original_path, q.sha256[:16], f"{q.size:,}")
    console.print(table)


@quarantine_app.command("restore")
def quarantine_restore(
    quarantine_id: str = typer.Argument(..., help="The id `quarantine list` shows."),
    folder: Path | None = FOLDER,
) -> None:
    """Put a quarantined file back where it was (audited)."""
    import getpass

    from kestrel.respond import AuditLog, Quarantine
    from kestrel.respond.local import default_paths

    paths = default_paths()
    item = Quarantine(folder or paths.quarantine).restore(quarantine_id)
    detail = {"quarantine_id": quarantine_id, "path": item.original_path}
    AuditLog(paths.audit).append("file_restored", f"cli:{getpass.getuser()}", detail)
    console.print(f"restored {item.original_path}", highlight=False)
