"""The cloud evaluation harness: labelled groups → scratch store → every detector → scores.

Each group (`kestrel.eval.datasets`) is scrubbed of harness-only strings, read with
Kestrel's own readers into a fresh in-memory store, and run through the embedded pipeline
(`run_detection`, hourly slices) with fresh detectors. An event is *flagged* when it is in
the evidence of any finding; event-level scores compare flagged events with the record
labels, label-level ("technique") scores ask whether any positive event of a label
(Stratus technique, Panther rule, generated scenario) was flagged.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kestrel.detect import Detector
from kestrel.eval.datasets import Group, Record, scrub
from kestrel.findings import Finding
from kestrel.ingest import READERS
from kestrel.ingest.base import Source
from kestrel.pipeline import run_detection
from kestrel.store import DuckDBStore

DetectorFactory = Callable[[], Mapping[str, Detector]]


@dataclass
class Outcome:
    """One record's result: its label and whether (and by which detectors) it was flagged."""

    group: str
    record: Record
    detectors: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    rejected: bool = False

    @property
    def flagged(self) -> bool:
        """Whether any finding named this record's event."""
        return bool(self.detectors)


@dataclass
class Evaluation:
    """Every outcome of a dataset, and the scores computed from them."""

    dataset: str
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract of ``kestrel eval --json``."""
        return {
            "dataset": self.dataset,
            "event": _scores(self.outcomes),
            "technique": _labels(self.outcomes),
            "by_detector": _by_detector(self.outcomes),
            "rejected_by_reader": sum(o.rejected for o in self.outcomes),
            "misses": [_brief(o) for o in self.outcomes if o.record.positive and not o.flagged],
            "false_positives": [_brief(o) for o in self.outcomes
                                if o.flagged and not o.record.positive],
        }  # fmt: skip


def evaluate(dataset: str, groups: Iterable[Group], factory: DetectorFactory) -> Evaluation:
    """Run every group through a scratch store and fresh detectors."""
    result = Evaluation(dataset)
    for group in groups:
        result.outcomes.extend(run_group(group, factory()))
    return result


def run_group(group: Group, detectors: Mapping[str, Detector]) -> list[Outcome]:
    """Ingest one group into an in-memory store, detect, and label each record's event."""
    store = DuckDBStore(":memory:")
    try:
        keys = _ingest(store, group.records)
        findings = run_detection(store, detectors).findings
    finally:
        store.close()
    hits = _hits(findings)
    out = []
    for rec, event_ids in zip(group.records, keys, strict=True):
        found = [h for e in event_ids for h in hits.get(e, [])]
        dets = tuple(sorted({d for d, _ in found}))
        sigs = tuple(sorted({s for _, ss in found for s in ss}))
        out.append(Outcome(group.name, rec, dets, sigs, rejected=not event_ids))
    return out


def _ingest(store: DuckDBStore, records: list[Record]) -> list[list[str]]:
    """Read the records with Kestrel's readers into ``store``; each record's event ids."""
    ids: list[list[str]] = [[] for _ in records]
    for fmt in sorted({r.fmt for r in records}):
        idx = [i for i, r in enumerate(records) if r.fmt == fmt]
        data = b"\n".join(scrub(records[i].raw) for i in idx)
        source = Source(f"eval.{fmt}", lambda d=data: io.BytesIO(d), len(data))  # type: ignore[misc]
        by_raw: dict[str, list[str]] = {}
        for chunk in READERS[fmt]().read(source):
            store.append(chunk.batch)
            raws = chunk.batch.column("raw").to_pylist()
            for raw, eid in zip(raws, chunk.batch.column("event_id").to_pylist(), strict=True):
                by_raw.setdefault(_key(fmt, raw), []).append(eid)
        for i in idx:
            ids[i] = by_raw.get(_key(fmt, scrub(records[i].raw).decode()), [])
    return ids


def _key(fmt: str, raw: str) -> str:
    """How a record is found again among the events: its raw text; for metric rows (one
    event per metric) the row's ``sample_id`` or its timestamp + host."""
    if fmt != "metrics":
        return raw
    import json

    row = json.loads(raw)
    return str(row.get("sample_id") or (row.get("timestamp"), row.get("host")))


def _hits(findings: list[Finding]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for f in findings:
        names = tuple(s.name for s in f.signals)
        for e in f.evidence:
            out.setdefault(e, []).append((f.detector, names))
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn}  # fmt: skip


def _scores(outcomes: list[Outcome]) -> dict[str, Any]:
    tp = sum(o.flagged and o.record.positive for o in outcomes)
    fp = sum(o.flagged and not o.record.positive for o in outcomes)
    fn = sum(not o.flagged and o.record.positive for o in outcomes)
    return _prf(tp, fp, fn)


def _labels(outcomes: list[Outcome]) -> dict[str, Any]:
    positive = {o.record.label for o in outcomes if o.record.positive}
    detected = {o.record.label for o in outcomes if o.record.positive and o.flagged}
    flagged = {o.record.label for o in outcomes if o.flagged}
    precision = len(flagged & positive) / len(flagged) if flagged else 1.0
    return {"precision": round(precision, 4),
            "recall": round(len(detected) / len(positive), 4) if positive else 1.0,
            "detected": len(detected), "total": len(positive),
            "missed": sorted(positive - detected)}  # fmt: skip


def _by_detector(outcomes: list[Outcome]) -> dict[str, Any]:
    names = sorted({d for o in outcomes for d in o.detectors})
    out = {}
    for name in names:
        tp = sum(name in o.detectors and o.record.positive for o in outcomes)
        fp = sum(name in o.detectors and not o.record.positive for o in outcomes)
        fn = sum(o.record.positive and name not in o.detectors for o in outcomes)
        out[name] = _prf(tp, fp, fn)
    return out


def _brief(o: Outcome) -> dict[str, Any]:
    return {"group": o.group, "label": o.record.label, "key": o.record.key,
            "detectors": list(o.detectors), "signals": list(o.signals),
            "rejected_by_reader": o.rejected}  # fmt: skip


def signal_counts(evaluation: Evaluation) -> Counter[str]:
    """How often each signal fired on a flagged record (for the text report)."""
    return Counter(s for o in evaluation.outcomes for s in o.signals)
