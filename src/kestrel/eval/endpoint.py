"""The endpoint ensemble on real Windows attack recordings: findings per dataset, and the
score distribution of the adversary's activity against the benign background.

Data (``shared/datasets``), read through the product's own readers:

* OTRF Security-Datasets (``otrf_security_datasets``, ``winlog-json``): each dataset is one
  recording of an attack (its technique in ``manifest.csv`` / the metadata YAML), with
  whatever else the hosts did meanwhile.
* EVTX-ATTACK-SAMPLES (``evtx_attack_samples``, ``evtx``): one file per attack sample,
  labelled by tactic folder; "every event in a file belongs to that sample" (the datasets
  README), so it has no benign background: all of it is attack.

Attack vs benign, OTRF (`adversary_mask`): the adversary's *process tree* is every process
created during the recording (process-creation events) plus every process whose pid the
metadata's ``adversary_view`` names (the C2 agent, e.g. Empire's ``powershell 7456``),
closed over children (``parent_pid`` on the same host). An event is attack when its acting
process (host, ``process_pid``) is in the tree; the rest (services, Sysmon, the pre-existing
desktop, other hosts) is the benign background. Known limits: a benign process started during
the recording counts as attack; adversary code injected into a process that existed before,
with no pid in the view, counts as background.

Windows: per dataset, host, minute and side (attack / background), the highest ensemble
score of that side's events: the distribution that decides what crosses the alert line.
The ensemble runs as the pipeline would, one detector over a corpus with its datasets in time
order (baselines per host carry over), the IsolationForest fitted on the first
``auto_train`` events of each class (default 500 here: most recordings hold fewer than 2,000
process / network / file events, the detector's default).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from kestrel.detect.endpoint import EndpointEnsembleDetector
from kestrel.detect.intel import ThreatIntelDetector
from kestrel.events import Batch, empty_batch

Enrich = Callable[[Batch], Batch]


@dataclass(frozen=True)
class Labelled:
    """One dataset: its events and which of them are the adversary's."""

    corpus: str  # "otrf" or "evtx"
    name: str
    label: str  # technique(s) or tactic
    batch: Batch
    attack: pl.Series  # bool per row


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One row of the per-dataset table."""

    corpus: str
    name: str
    label: str
    events: int
    scored: int  # process / network / file events the ensemble scores
    attack_events: int
    findings: int
    intel: int  # findings of the `intel` detector (enrichment evidence)
    top_severity: str
    max_attack: float
    max_background: float | None


def otrf(root: Path) -> Iterator[Labelled]:
    """Every Windows dataset of the OTRF folder, with the adversary-tree mask."""
    import yaml

    with (root / "manifest.csv").open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["file"].startswith("atomic/windows/")]
    for row in rows:
        batch = read_with(root / row["file"], "winlog-json")
        meta = yaml.safe_load((root / row["metadata"]).read_text(encoding="utf-8")) or {}
        view = str((meta.get("simulation") or {}).get("adversary_view") or "")
        label = row["techniques"].replace(";", ", ")
        yield Labelled("otrf", row["dataset_id"], label, batch, adversary_mask(batch, view))


def evtx(root: Path) -> Iterator[Labelled]:
    """Every EVTX-ATTACK-SAMPLES file (members of the zip), all of it attack."""
    from kestrel.ingest import readers
    from kestrel.ingest.archives import sources

    reader = readers()["evtx"]()
    for source in sources(root / "evtx_attack_samples.zip", {}):
        if not source.name.lower().endswith(".evtx"):
            continue
        batch = pa.concat_tables([empty_batch(), *(c.batch for c in reader.read(source))])
        name = source.name.split("!", 1)[-1]
        attack = pl.Series("attack", [True] * batch.num_rows, dtype=pl.Boolean)
        yield Labelled("evtx", name, name.split("/")[0], batch, attack)


def read_with(path: Path, fmt: str) -> Batch:
    """All events of one file or archive through the named reader."""
    from kestrel.ingest import readers
    from kestrel.ingest.archives import sources

    reader = readers()[fmt]()
    errors: dict[str, str] = {}
    tables = [c.batch for s in sources(path, errors) for c in reader.read(s)]
    return pa.concat_tables([empty_batch(), *tables])


def view_pids(view: str) -> set[int]:
    """Numbers in an adversary view that can be process ids (3 to 6 digits).

    >>> sorted(view_pids("1EHYPBVC ps 172.18.39.5  WORKSTATION5  powershell  7456  5/0.0"))
    [172, 7456]
    """
    return {int(n) for n in re.findall(r"(?<![\d.])(\d{3,6})(?![\d.])", view)}


def adversary_mask(batch: Batch, view: str) -> pl.Series:
    """True for events whose acting process is in the adversary's process tree."""
    frame = pl.from_arrow(batch.select(["class", "activity", "host", "process_pid", "parent_pid"]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col("host").fill_null(""))
    created = frame.filter((pl.col("class") == "process") & (pl.col("activity") == "create"))
    named = frame.filter(pl.col("process_pid").is_in(list(view_pids(view))))
    tree = pl.concat([created, named]).select("host", "process_pid").unique()
    tree = _children(frame, tree)
    keyed = frame.with_row_index("i").join(tree.with_columns(pl.lit(True).alias("attack")),
                                           on=["host", "process_pid"], how="left")  # fmt: skip
    return keyed.sort("i").get_column("attack").fill_null(False)


def _children(frame: pl.DataFrame, tree: pl.DataFrame, depth: int = 8) -> pl.DataFrame:
    """``tree`` plus every process whose parent is in it (same host), to a fixed depth."""
    links = frame.select("host", "process_pid", "parent_pid").drop_nulls().unique()
    for _ in range(depth):
        kids = links.join(tree.rename({"process_pid": "parent_pid"}), on=["host", "parent_pid"])
        grown = pl.concat([tree, kids.select("host", "process_pid")]).unique()
        if grown.height == tree.height:
            return grown
        tree = grown
    return tree


def evaluate(
    sets: Sequence[Labelled], auto_train: int = 500, enrich: Enrich | None = None
) -> tuple[list[DatasetRow], pl.DataFrame]:
    """Score every corpus in time order with one detector each; rows and windows.
    ``enrich`` (the enrichment stage) runs on each dataset first, as in the pipeline."""
    rows: list[DatasetRow] = []
    windows: list[pl.DataFrame] = []
    for corpus in dict.fromkeys(s.corpus for s in sets):
        detector = EndpointEnsembleDetector(auto_train=auto_train)
        ordered = sorted((s for s in sets if s.corpus == corpus), key=_start)
        for s in ordered:
            row, win = _one(detector, _enriched(s, enrich))
            rows.append(row)
            windows.append(win)
    windows = [w for w in windows if w.height]
    return rows, pl.concat(windows) if windows else pl.DataFrame()


def _enriched(s: Labelled, enrich: Enrich | None) -> Labelled:
    if enrich is None or not s.batch.num_rows:
        return s
    return Labelled(s.corpus, s.name, s.label, enrich(s.batch), s.attack)


def _start(s: Labelled) -> Any:
    return s.batch.column("time")[0].as_py() if s.batch.num_rows else None


def _one(detector: EndpointEnsembleDetector, s: Labelled) -> tuple[DatasetRow, pl.DataFrame]:
    scored = detector.score(s.batch) if s.batch.num_rows else pl.DataFrame()
    if scored.height:
        ids = pl.DataFrame({"event_id": s.batch.column("event_id").to_pylist(), "attack": s.attack})
        scored = scored.join(ids.unique("event_id"), on="event_id", how="left")
    found = detector.findings_of(scored) if scored.height else []
    intel = ThreatIntelDetector().detect(s.batch)
    win = _windows(scored, s) if scored.height else pl.DataFrame()
    side = {k: _max(scored, v) for k, v in (("a", True), ("b", False))}
    top = max((f.severity for f in found), default=None)
    attack_n = int(scored.get_column("attack").sum()) if scored.height else 0
    severity = str(top) if top is not None else "-"
    counts = (s.batch.num_rows, scored.height, attack_n, len(found), len(intel))
    return DatasetRow(s.corpus, s.name, s.label, *counts, severity, side["a"] or 0.0,
                      side["b"]), win  # fmt: skip


def _max(scored: pl.DataFrame, attack: bool) -> float | None:
    if not scored.height:
        return None
    part = scored.filter(pl.col("attack") == attack).get_column("score")
    return float(part.max()) if part.len() else None  # type: ignore[arg-type]


def _windows(scored: pl.DataFrame, s: Labelled) -> pl.DataFrame:
    """Highest score per host, minute and side."""
    minute = pl.col("time").dt.truncate("1m").alias("minute")
    return (
        scored.group_by("host", minute, "attack")
        .agg(pl.col("score").max())
        .with_columns(pl.lit(s.corpus).alias("corpus"), pl.lit(s.name).alias("dataset"))
    )


def markdown(rows: Sequence[DatasetRow], windows: pl.DataFrame) -> str:
    """The per-dataset table and a summary of the window score distributions."""
    lines = [
        "| corpus | dataset | label | events | scored | attack events | findings | intel | "
        "top severity | max score attack | max score background |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        back = "-" if r.max_background is None else f"{r.max_background:.1f}"
        lines.append(f"| {r.corpus} | {r.name} | {r.label} | {r.events:,} | {r.scored:,} | "
                     f"{r.attack_events:,} | {r.findings} | {r.intel} | {r.top_severity} | "
                     f"{r.max_attack:.1f} | {back} |")  # fmt: skip
    return "\n".join([*lines, "", *summary_lines(windows)])


def summary_lines(windows: pl.DataFrame) -> list[str]:
    """Per corpus and side: windows, median / p95 / max score, share at or above 50."""
    if not windows.height:
        return ["no scored windows"]
    stats = (
        windows.group_by("corpus", "attack", maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("score").median().alias("median"),
            pl.col("score").quantile(0.95).alias("p95"),
            pl.col("score").max().alias("max"),
            (pl.col("score") >= 50).mean().alias("alerting"),
        )
        .sort("corpus", "attack")
    )
    return [
        f"- {c} {'attack' if a else 'background'} windows: {n:,}, median {m:.1f}, "
        f"p95 {p:.1f}, max {x:.1f}, at or above 50: {100 * al:.1f} %"
        for c, a, n, m, p, x, al in stats.iter_rows()
    ]
