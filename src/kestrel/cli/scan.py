"""`kestrel scan`: files and folders through YARA and IOC feeds; exit code 1 on any hit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from kestrel.cli import app, console, err_console
from kestrel.errors import ConfigError

if TYPE_CHECKING:  # the library is imported inside the command, for `kestrel --help` speed
    from kestrel.enrich import IocEnricher
    from kestrel.enrich.scan import ScanReport
    from kestrel.enrich.yara import YaraScanner


@app.command()
def scan(
    paths: list[Path] = typer.Argument(..., help="Files or folders to scan (recursively)."),
    rules: list[Path] = typer.Option([], "--rules", "-r", help="YARA rule file, folder or zip."),
    iocs: list[Path] = typer.Option([], "--iocs", "-i", help="IOC feed: CSV, list, STIX, MISP."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as JSON."),
    max_mb: int = typer.Option(32, "--max-size", help="Skip files larger than this (MiB)."),
    timeout: int = typer.Option(10, "--timeout", help="YARA timeout per file (seconds)."),
) -> None:
    """Print each hit (file, rule or indicator, matched strings with offsets); exit 1 on any."""
    from kestrel.enrich.scan import scan_paths

    if not rules and not iocs:
        raise ConfigError("nothing to scan with: give --rules and/or --iocs")
    scanner = _scanner(rules, max_mb, timeout) if rules else None
    report = scan_paths(paths, scanner, _iocs(iocs) if iocs else None)
    if as_json:
        console.print_json(json.dumps(_as_json(report)))
    else:
        _print(report)
    if report.hits:  # SystemExit, not typer.Exit: `main` runs click with standalone_mode=False,
        raise SystemExit(1)  # where click turns typer.Exit into a return value


def _scanner(rules: list[Path], max_mb: int, timeout: int) -> YaraScanner:
    from kestrel.enrich.yara import YaraScanner, compile_rules

    compiled = compile_rules(rules)
    for failure in compiled.failures:
        err_console.print(f"[yellow]skipped rule file[/] {failure.path}: {failure.error}")
    return YaraScanner(compiled, max_bytes=max_mb * 1024 * 1024, timeout_s=timeout)


def _iocs(paths: list[Path]) -> IocEnricher:
    from kestrel.enrich import IocEnricher, load_feed, merge_feeds

    return IocEnricher(merge_feeds(load_feed(p) for p in paths))


def _as_json(report: ScanReport) -> dict[str, object]:
    return {
        "scanned": report.scanned,
        "hits": [{"file": h.path, "kind": h.kind, "match": h.name, "detail": h.detail}
                 for h in report.hits],
        "errors": [{"file": p, "error": e} for p, e in report.errors],
    }  # fmt: skip


def _print(report: ScanReport) -> None:
    table = Table("file", "kind", "match", "detail", title=f"{len(report.hits)} hits")
    for h in report.hits:
        table.add_row(h.path, h.kind, h.name, h.detail)
    if report.hits:
        console.print(table)
    for path, error in report.errors:
        err_console.print(f"[yellow]not scanned[/] {path}: {error}", highlight=False)
    console.print(f"{report.scanned} files scanned, {len(report.hits)} hits")
