"""The Sigma engine over the OTRF Security-Datasets (Windows atomic datasets): a "no false
storm" check on real attack recordings full of background activity.

Each dataset (a zip of NXLog JSON, listed in ``manifest.csv`` with its labelled ATT&CK
technique) is read by Kestrel's ``winlog-json`` reader and run through `SigmaDetector` with the
whole rule set. Per dataset: events, findings, distinct rules that fired, and whether a
finding names the labelled technique (the same id, or parent and sub-technique of each other).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kestrel.detect.sigma import SigmaDetector
from kestrel.events import Batch, empty_batch
from kestrel.findings import Finding


@dataclass(frozen=True, slots=True)
class DatasetResult:
    """One dataset's outcome."""

    dataset_id: str
    title: str
    techniques: tuple[str, ...]  # labelled
    events: int
    findings: int
    rules: int  # distinct rules that fired
    named: bool  # a finding names a labelled technique


def run_otrf(root: Path, rules: Sequence[Path]) -> list[DatasetResult]:
    """Every Windows dataset of the OTRF folder ``root`` (with ``manifest.csv``)."""
    detector = SigmaDetector([str(p) for p in rules])
    out = []
    for row in _manifest(root / "manifest.csv"):
        batch = read_dataset(root / row["file"])
        found = detector.detect(batch) if batch.num_rows else []
        out.append(_result(row, batch.num_rows, found))
    return out


def _manifest(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["file"].startswith("atomic/windows/")]


def read_dataset(path: Path) -> Batch:
    """All events of one dataset zip, through the ``winlog-json`` reader."""
    from kestrel.ingest import readers
    from kestrel.ingest.archives import sources

    reader = readers()["winlog-json"]()
    errors: dict[str, str] = {}
    tables = [c.batch for s in sources(path, errors) for c in reader.read(s)]
    return pa.concat_tables([empty_batch(), *tables])


def _result(row: dict[str, str], events: int, found: list[Finding]) -> DatasetResult:
    labelled = tuple(t.strip() for t in row["techniques"].split(";") if t.strip())
    named = {t for f in found for t in f.techniques}
    rules = {s.name for f in found for s in f.signals}
    return DatasetResult(
        row["dataset_id"], row["title"], labelled, events, len(found), len(rules),
        any(names(t, n) for t in labelled for n in named),
    )  # fmt: skip


def names(labelled: str, found: str) -> bool:
    """The same technique, or one is the other's parent.

    >>> names("T1003.002", "T1003"), names("T1003", "T1003.001"), names("T1003", "T1059")
    (True, True, False)
    """
    return labelled.split(".")[0] == found.split(".")[0] and (
        labelled == found or "." not in labelled or "." not in found
    )


def markdown(results: Sequence[DatasetResult]) -> str:
    """The per-dataset table and the technique summary line."""
    lines = ["| dataset | technique | events | findings | rules | names it |",
             "| --- | --- | ---: | ---: | ---: | :---: |"]  # fmt: skip
    for r in results:
        lines.append(f"| {r.title} | {', '.join(r.techniques)} | {r.events:,} | "
                     f"{r.findings:,} | {r.rules} | {'yes' if r.named else 'no'} |")  # fmt: skip
    labelled = {t for r in results for t in r.techniques}
    named = {t for r in results if r.named for t in r.techniques}
    lines.append(f"\n{len(named)} of {len(labelled)} labelled techniques named by a finding.")
    return "\n".join(lines)
