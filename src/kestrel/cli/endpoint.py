"""`kestrel train endpoint` (IsolationForests from the store's history) and `kestrel explain`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from kestrel.cli import app, console
from kestrel.cli.detect import DATASETS_OPTION
from kestrel.cli.sigma import eval_app
from kestrel.config import default_db, home
from kestrel.errors import ConfigError

if TYPE_CHECKING:
    from kestrel.enrich import EnrichStage

train_app = typer.Typer(help="Train the models of learning detectors on the store's history.")
app.add_typer(train_app, name="train")


@train_app.command("endpoint")
def train_endpoint(
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    out: Path | None = typer.Option(None, "--out", help="Model file (default ~/.kestrel/...)."),
) -> None:
    """Fit one IsolationForest per endpoint class; give the file to the detector's model_path."""
    from kestrel.detect.endpoint.ensemble import training_frames
    from kestrel.detect.endpoint.models import IsolationModel
    from kestrel.store import open_store
    from kestrel.store.base import EventFilter

    store = open_store(db or default_db())
    try:
        batch = store.events(EventFilter(classes=("process", "network", "file")))
    finally:
        store.close()
    frames = training_frames(batch)
    model = IsolationModel.fit(frames)
    path = out or home() / "models" / "endpoint_isolation.joblib"
    model.save(path)
    sizes = ", ".join(f"{c}: {f.height:,}" for c, f in frames.items())
    console.print(f"trained {sorted(model.forests)} on {sizes} events → {path}")


@app.command()
def explain(
    finding_id: str = typer.Argument(..., help="A finding id (or a unique prefix of one)."),
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
) -> None:
    """Print a stored finding's signals: value, threshold, and what each contributed."""
    from kestrel.pipeline import load_findings
    from kestrel.store import open_store

    store = open_store(db or default_db())
    try:
        found = [f for f in load_findings(store) if f.finding_id.startswith(finding_id)]
    finally:
        store.close()
    if len(found) != 1:
        raise ConfigError(f"{len(found)} findings match id {finding_id!r}")
    f = found[0]
    span = f"{f.first_seen:%Y-%m-%d %H:%M:%S} → {f.last_seen:%H:%M:%S}"
    head = f"[bold]{f.title or f.detector}[/] {f.severity} {f.entity} {span}"
    console.print(head, highlight=False)
    table = Table("signal", "kind", "value", "threshold", "contribution / detail")
    for s in f.signals:
        threshold = "" if s.threshold is None else f"{s.threshold:g}"
        table.add_row(s.name, s.kind, str(s.value), threshold, s.detail)
    console.print(table)
    console.print(
        f"techniques: {' '.join(f.techniques) or '-'}; evidence: {len(f.evidence)} events"
    )


@eval_app.command("endpoint")
def eval_endpoint(
    datasets: Path | None = DATASETS_OPTION,
    plot: Path | None = typer.Option(None, "--plot", help="Write the score distribution PNG."),
    iocs: list[Path] | None = typer.Option(None, "--iocs", help="IOC feeds to enrich with."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (`enrich` section)."),
    as_json: bool = typer.Option(False, "--json", help="Print rows and summary as JSON."),
) -> None:
    """The endpoint ensemble on OTRF and EVTX-ATTACK-SAMPLES (through the real readers):
    findings per dataset, adversary vs background window scores (`kestrel.eval.endpoint`)."""
    import dataclasses
    import json

    from kestrel.cli.detect import _datasets_dir, enrich_stage
    from kestrel.eval.endpoint import evaluate, evtx, markdown, otrf, summary_lines
    from kestrel.eval.plot import plot_windows

    root = datasets or _datasets_dir()
    stage = enrich_stage(policy)
    if iocs:
        stage = _with_iocs(stage, iocs)
    sets = [*otrf(root / "otrf_security_datasets"), *evtx(root / "evtx_attack_samples")]
    rows, windows = evaluate(sets, enrich=stage)
    if plot:
        console.print(f"plot: {plot_windows(windows, plot, (50.0, 65.0, 80.0))}")
    if as_json:
        print(json.dumps({"rows": [dataclasses.asdict(r) for r in rows],
                          "summary": summary_lines(windows)}))  # fmt: skip
    else:
        print(markdown(rows, windows))


def _with_iocs(stage: EnrichStage, feeds: list[Path]) -> EnrichStage:
    """``stage`` with an IOC enricher over ``feeds`` in place of any it had."""
    from kestrel.enrich import EnrichStage, IocEnricher, load_feed, merge_feeds

    ioc = IocEnricher(merge_feeds(load_feed(p) for p in feeds))
    return EnrichStage([ioc, *(e for e in stage.enrichers if e.name != "ioc")])
