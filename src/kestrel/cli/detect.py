"""`kestrel detect` (run and render), `kestrel findings`, `kestrel generate cloud`,
`kestrel eval stratus|panther|otrf|generated`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from kestrel.cli import app, console, err_console
from kestrel.cli.sigma import eval_app
from kestrel.config import default_db
from kestrel.errors import ConfigError, KestrelError

if TYPE_CHECKING:
    from kestrel.enrich import EnrichStage
    from kestrel.findings import Finding

generate_app = typer.Typer(help="Write synthetic telemetry (for demos and tests; not real data).")
app.add_typer(generate_app, name="generate")
DATASETS_OPTION = typer.Option(
    None, "--datasets", help="The shared datasets folder (default: found beside the project)."
)


@app.command()
def findings(
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    fmt: str = typer.Option("table", "--format", help="table, json, ocsf or sigma."),
    severity: str | None = typer.Option(None, "--severity", help="Lowest severity to show."),
    since: datetime | None = typer.Option(None, "--since", help="Last seen at or after."),
) -> None:
    """Stored findings (written by `kestrel detect`)."""
    from kestrel.findings import Severity
    from kestrel.pipeline import load_findings
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        found = load_findings(store, Severity.parse(severity) if severity else None, since)
    finally:
        store.close()
    if fmt == "table":
        console.print(findings_table(found))
    else:
        print_findings(found, fmt)


def run_detect(
    db: str,
    rules: list[str],
    as_json: bool,
    policy: Path | None = None,
    enrich: bool = True,
    sigma_level: str | None = None,
) -> None:
    """`kestrel detect`: every registered detector (Sigma with ``rules``) through the
    embedded runner over the events newer than its cursor, each slice enriched first (the
    ``enrich`` section of ``policy``, or the defaults); findings stored and printed. Sigma
    runs only rules of ``sigma_level`` or above when it is given."""
    from kestrel.detect.sigma import SigmaDetector
    from kestrel.findings.correlate import merge_findings
    from kestrel.pipeline import default_detectors, run_detection
    from kestrel.store import open_store

    detectors = {
        "sigma": SigmaDetector(rules, min_level=sigma_level),
        **default_detectors(("sigma",)),
    }
    store = open_store(db)
    try:
        with console.status("detecting", spinner="dots"):
            report = run_detection(
                store, detectors, enrich=enrich_stage(policy) if enrich else None
            )
    finally:
        store.close()
    found = merge_findings(report.findings, timedelta(minutes=5))
    if as_json:
        print_findings(found, "json")
        return
    console.print(findings_table(found))
    console.print(f"{report.events:,} events in {report.slices:,} hourly slices; "
                  f"{report.stored:,} findings stored" + ("" if rules else
                  "; no Sigma rules (--rules or $KESTREL_SIGMA_RULES)"))  # fmt: skip


def enrich_stage(policy: Path | None) -> EnrichStage:
    """The enrichment stage of ``policy`` (or the defaults); its enrichers named on stderr."""
    from kestrel.enrich.policy import build_stage, load_section

    stage = build_stage(load_section(policy))
    names = ", ".join(e.name for e in stage.enrichers) or "none"
    err_console.print(f"[dim]enrichers: {names}[/]", highlight=False)
    return stage


def findings_table(found: list[Finding]) -> Table:
    """Findings as a Rich table, worst first."""
    table = Table(title=f"{len(found):,} findings")
    for col in ("severity", "detector", "entity", "title", "techniques", "first seen",
                "last seen", "events"):  # fmt: skip
        table.add_column(col)
    for f in sorted(found, key=lambda f: (-f.severity, f.first_seen)):
        table.add_row(_SEVERITY_STYLE.get(str(f.severity), "") + str(f.severity), f.detector,
                      str(f.entity), f.title, " ".join(f.techniques),
                      f"{f.first_seen:%Y-%m-%d %H:%M:%S}", f"{f.last_seen:%Y-%m-%d %H:%M:%S}",
                      str(len(f.evidence)))  # fmt: skip
    return table


def print_findings(found: list[Finding], fmt: str) -> None:
    """Findings as JSON lines (``json``, ``ocsf``) or Sigma rules (``sigma``, YAML documents)."""
    from kestrel.findings.export import to_json, to_ocsf, to_sigma

    if fmt not in ("json", "ocsf", "sigma"):
        raise ConfigError(f"unknown format {fmt!r}: table, json, ocsf or sigma")
    if fmt == "sigma":
        print("\n---\n".join(to_sigma(f) for f in found))
        return
    render = to_json if fmt == "json" else to_ocsf
    for f in found:
        print(json.dumps(render(f)))


_SEVERITY_STYLE = {"critical": "[bold red]", "high": "[red]", "medium": "[yellow]"}


@generate_app.command("cloud")
def generate_cloud(
    scenario: str = typer.Option(
        "normal", help="normal, gpu_hijack, rogue_training, api_abuse, all."
    ),
    hours: int = typer.Option(24, help="Hours of traffic."),
    seed: int = typer.Option(7, help="Random seed (same seed, same bytes)."),
    out: Path = typer.Option(Path("generated"), "--out", help="Folder to write into."),
) -> None:
    """CloudTrail-shaped and GPU-metric JSON Lines, labels in a separate file. Synthetic."""
    from kestrel.eval.generate import generate, write

    paths = write(generate(scenario, hours, seed), out)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


def _run_eval(name: str, datasets: Path | None, as_json: bool) -> None:
    from kestrel.eval.cloud import eval_detectors, evaluate
    from kestrel.eval.datasets import load

    root = datasets or _datasets_dir()
    result = evaluate(name, load(name, root), eval_detectors(root)).as_dict()
    if as_json:
        print(json.dumps(result))
    else:
        _print_eval(result)


def _datasets_dir() -> Path:
    for parent in (Path.cwd(), *Path.cwd().parents):
        if (parent / "shared" / "datasets").is_dir():
            return parent / "shared" / "datasets"
    return Path("../shared/datasets")


def _print_eval(r: dict[str, Any]) -> None:
    e, t = r["event"], r["technique"]
    console.print(
        f"[bold]{r['dataset']}[/]: event precision {e['precision']:.3f} recall "
        f"{e['recall']:.3f} f1 {e['f1']:.3f} (tp {e['tp']}, fp {e['fp']}, fn {e['fn']}); "
        f"labels detected {t['detected']}/{t['total']} (recall {t['recall']:.3f})"
    )
    for name, s in r["by_detector"].items():
        console.print(f"  {name}: precision {s['precision']:.3f} recall {s['recall']:.3f}")
    for fp in r["false_positives"]:
        console.print(f"[yellow]false positive[/] {fp['group']}: {', '.join(fp['signals'])}",
                      highlight=False)  # fmt: skip
    console.print(f"{len(r['misses'])} positive events missed "
                  f"({r['rejected_by_reader']} records the reader rejected)")  # fmt: skip


def _eval_command(name: str) -> None:
    def command(
        datasets: Path | None = DATASETS_OPTION,
        as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
    ) -> None:
        _run_eval(name, datasets, as_json)

    command.__doc__ = f"Precision / recall of the cloud detectors on {name}."
    eval_app.command(name)(command)


for _name in ("stratus", "panther", "otrf", "generated"):
    _eval_command(_name)


@app.command()
def entities(
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    entity_type: str | None = typer.Option(None, "--type", help="Only this entity type."),
    as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON."),
) -> None:
    """Entity profiles learnt by `kestrel detect`: who is there and what is normal for them."""
    from kestrel.pipeline import entity_profiles
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        rows = entity_profiles(store, entity_type)
    finally:
        store.close()
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "services"} for r in rows]))
        return
    console.print(_entities_table(rows))


def _entities_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows):,} entities")
    for col in ("type", "id", "provider", "events", "regions", "calls/h", "errors", "gpu %",
                "last seen"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        table.add_row(r["type"], r["id"], r["provider"] or "", f"{r['events']:,}",
                      ", ".join(r["regions"]), _num(r["api_calls_per_hour"]),
                      _num(r["error_rate"]), _num(r["gpu_util_avg"]),
                      (r["last_seen"] or "")[:19])  # fmt: skip
    return table


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


@app.command()
def entity(
    entity_id: str = typer.Argument(..., help="An entity id, or type:id."),
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
) -> None:
    """One entity's profile: averages, rates, active hours, services and operations."""
    from kestrel.pipeline import entity_profile
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        found = entity_profile(store, entity_id)
    finally:
        store.close()
    if found is None:
        raise KestrelError(f"no profile for {entity_id!r} (run `kestrel detect` first)")
    if as_json:
        print(json.dumps(found))
        return
    _print_profile(found)


def _print_profile(p: dict[str, Any]) -> None:
    console.print(f"[bold]{p['type']}:{p['id']}[/] ({p['provider'] or 'unknown provider'})",
                  highlight=False)  # fmt: skip
    for key in ("first_seen", "last_seen", "events", "regions", "instance_types",
                "gpu_util_avg", "mem_util_avg", "power_watts_avg", "api_calls",
                "api_calls_per_hour", "error_rate"):  # fmt: skip
        value = p[key]
        if value not in (None, [], 0) or key == "events":
            shown = ", ".join(value) if isinstance(value, list) else value
            console.print(f"  {key.replace('_', ' ')}: {shown}", highlight=False)
    console.print("  active hours (UTC): " + _histogram(p["active_hours"]), highlight=False)
    table = Table(title="services and operations")
    for col in ("service", "operation", "first seen", "calls"):
        table.add_column(col)
    for svc, info in p["services"].items():
        for op, o in info["operations"].items():
            table.add_row(svc, op, o["first_seen"][:19], str(o["calls"]))
    if p["services"]:
        console.print(table)


def _histogram(hours: list[int]) -> str:
    """24 hours as block characters, so the shape of a working day shows at a glance."""
    top = max(hours) or 1
    levels = [max(1, round(8 * h / top)) if h else 0 for h in hours]
    return "".join(" ▁▂▃▄▅▆▇█"[n] for n in levels) + "  (00 → 23)"
