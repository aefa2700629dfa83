"""`kestrel findings`, `kestrel generate cloud`, `kestrel eval stratus|panther|otrf|generated`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kestrel.cli import app, console
from kestrel.cli.sigma import eval_app
from kestrel.config import default_db

generate_app = typer.Typer(help="Write synthetic telemetry (for demos and tests; not real data).")
app.add_typer(generate_app, name="generate")
DATASETS_OPTION = typer.Option(
    None, "--datasets", help="The shared datasets folder (default: found beside the project)."
)


@app.command()
def findings(
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
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
    if fmt == "json":
        from kestrel.findings.export import to_json

        for f in found:
            print(json.dumps(to_json(f)))
        return
    table = Table(title=f"{len(found):,} findings")
    for col in ("severity", "detector", "entity", "title", "techniques", "first seen", "events"):
        table.add_column(col)
    for f in sorted(found, key=lambda f: (-f.severity, f.first_seen)):
        table.add_row(str(f.severity), f.detector, str(f.entity), f.title, " ".join(f.techniques),
                      f"{f.first_seen:%Y-%m-%d %H:%M}", str(len(f.evidence)))  # fmt: skip
    console.print(table)


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
    from kestrel.eval.cloud import evaluate
    from kestrel.eval.datasets import load
    from kestrel.pipeline import default_detectors

    root = datasets or _datasets_dir()
    result = evaluate(name, load(name, root), lambda: default_detectors(("sigma",))).as_dict()
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
