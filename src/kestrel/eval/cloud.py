"""The cloud evaluation harness: labelled groups → Kestrel's readers → every detector → scores.

Each group (`kestrel.eval.datasets`) is scrubbed of harness-only strings, read with Kestrel's
own readers, and run through fresh detectors in the embedded runner's hourly slices, on its
own: no history is shared between groups. An event is *flagged* when it is in the evidence
of any finding; event-level scores compare flagged events with the record labels,
label-level ("technique") scores ask whether any positive event of a label (Stratus
technique, Panther rule, generated scenario) was flagged.

Why not a scratch store per group (as `run_detection` would need): for one-record Panther
cases the store's set-up and queries were three quarters of the time (92 s for 472 cases).
`run_group` hands the detectors exactly what the runner would read back from a fresh store
— one event per ``event_id`` (the first), in ``(time, event_id)`` order, cut into the same
hourly slices from the group's first event — and flushes them at the end, as the runner
does; a test compares its findings with `run_detection` on a real store.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect import Detector
from kestrel.detect.cloud.common import forget_batch_columns
from kestrel.eval.datasets import Group, Record, scrub
from kestrel.events import SCHEMA, Batch
from kestrel.findings import Finding, Severity
from kestrel.ingest import READERS
from kestrel.ingest.base import Source
from kestrel.store import Store

DetectorFactory = Callable[[], Mapping[str, Detector]]
SIGMA_ZIP = Path("sigma") / "sigma_rules_windows_cloud.zip"
SIGMA_CLOUDTRAIL = "rules/cloud/aws/cloudtrail/"
# SigmaHQ's ``low`` / ``informational`` CloudTrail rules are hunting leads, not alerts (one
# of them matches every call made with an assumed role); the evaluation runs the rest, with
# the Sigma detector's own level ranking (`kestrel.detect.sigma.detector.LEVELS`)
SIGMA_MIN_LEVEL = "medium"
# the embedded runner's slice (`run_detection`'s default): the unit of "known before"
SLICE = timedelta(hours=1)


def eval_detectors(datasets: Path | None = None, sigma: bool = True) -> DetectorFactory:
    """Every registered detector, fresh for each group, plus SigmaHQ's CloudTrail rules of
    level medium or above from ``datasets`` (compiled once, shared by the groups' Sigma
    detectors), when ``sigma`` and the rules are there."""
    from kestrel.detect.sigma import SigmaDetector
    from kestrel.pipeline import default_detectors

    rules = sigma_cloudtrail_rules(datasets / SIGMA_ZIP) if sigma and datasets else []

    def factory() -> dict[str, Detector]:
        found = default_detectors(("sigma",))
        if rules:
            found["sigma"] = SigmaDetector.from_compiled(rules)
        return found

    return factory


def sigma_cloudtrail_rules(path: Path, min_level: str = SIGMA_MIN_LEVEL) -> list[Any]:
    """SigmaHQ's AWS CloudTrail rules in the rules archive at ``path``, compiled, of level
    ``min_level`` or above as `SigmaDetector` ranks levels (its ``min_level``: a rule without
    a level ranks as medium); none when the archive is missing."""
    from kestrel.detect.sigma import compile_rules, load_text
    from kestrel.detect.sigma.detector import at_or_above, check_level

    check_level(min_level)

    if not path.is_file():
        return []
    loaded = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith(SIGMA_CLOUDTRAIL) and name.endswith((".yml", ".yaml")):
                text = zf.read(name).decode("utf-8")
                loaded.extend(load_text(text, name, on_error="collect").rules)
    compiled, _issues = compile_rules(loaded)
    return at_or_above(compiled, min_level)


@dataclass
class Outcome:
    """One record's result: its label and whether (and by which detectors) it was flagged."""

    group: str
    record: Record
    detectors: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    rejected: bool = False
    # (detector, the highest severity of its findings that name this record's events)
    severities: tuple[tuple[str, int], ...] = ()

    @property
    def scored(self) -> bool:
        """Whether this record counts in the scores (in the dataset's scope)."""
        return not self.record.excluded

    @property
    def severity(self) -> int | None:
        """The highest severity of the findings that name this record (None: unflagged)."""
        return max((sev for _, sev in self.severities), default=None)

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
        scored = [o for o in self.outcomes if o.scored]
        out = [o for o in self.outcomes if not o.scored]
        return {
            "dataset": self.dataset,
            "event": _scores(scored),
            "technique": _labels(scored),
            "by_detector": _by_detector(scored),
            "rejected_by_reader": sum(o.rejected for o in scored),
            "misses": [_brief(o) for o in scored if o.record.positive and not o.flagged],
            "false_positives": [_brief(o) for o in scored if o.flagged and not o.record.positive],
            "without_sigma": _without_sigma(scored),
            "by_severity": _by_severity(scored),
            "label_conflicts": _conflicts(scored),
            "excluded": {"records": len(out), "positive": sum(o.record.positive for o in out),
                         "by_reason": dict(Counter(o.record.excluded for o in out)),
                         "keys": [o.record.key for o in out]},
        }  # fmt: skip


def evaluate(dataset: str, groups: Iterable[Group], factory: DetectorFactory) -> Evaluation:
    """Run every group through a scratch store and fresh detectors."""
    result = Evaluation(dataset)
    for group in groups:
        result.outcomes.extend(run_group(group, factory()))
    return result


def run_group(group: Group, detectors: Mapping[str, Detector]) -> list[Outcome]:
    """Read one group, run ``detectors`` over it, and label each record's events."""
    records = [r for r in group.records if not r.excluded]
    out = [Outcome(group.name, r) for r in group.records if r.excluded]
    if not records:
        return out
    batch, keys = _read(records)
    findings = detect(batch, detectors)
    hits = _hits(findings)
    for rec, event_ids in zip(records, keys, strict=True):
        found = [h for e in event_ids for h in hits.get(e, [])]
        dets = tuple(sorted({d for d, _, _ in found}))
        sigs = tuple(sorted({s for _, ss, _ in found for s in ss}))
        worst = tuple((d, max(sev for dd, _, sev in found if dd == d)) for d in dets)
        out.append(Outcome(group.name, rec, dets, sigs, not event_ids, worst))
    return out


def detect(batch: Batch, detectors: Mapping[str, Detector]) -> list[Finding]:
    """What `run_detection` finds in a fresh store holding ``batch`` (stored form, see
    `_read`): each hourly slice through every detector in order, then their ``flush``."""
    findings: list[Finding] = []
    try:
        for part in slices(batch, SLICE):
            for det in detectors.values():
                findings.extend(det.detect(part))
        for det in detectors.values():
            flush = getattr(det, "flush", None)
            if callable(flush):
                findings.extend(flush())
    finally:
        forget_batch_columns()
    return findings


def slices(batch: Batch, slice_: timedelta) -> Iterator[Batch]:
    """``batch`` (ordered by time) cut as the runner cuts the store: ``[lo + k·slice_,
    lo + (k+1)·slice_)`` from the first event's time ``lo``, empty slices skipped."""
    if batch.num_rows == 0:
        return
    micros = pc.cast(batch.column("time"), pa.int64()).to_numpy()
    k = (micros - micros[0]) // int(slice_ / timedelta(microseconds=1))
    bounds = [0, *(np.flatnonzero(np.diff(k)) + 1).tolist(), batch.num_rows]
    for start, end in pairwise(bounds):
        yield batch.slice(start, end - start)


def _read(records: list[Record]) -> tuple[Batch, list[list[str]]]:
    """The records read with Kestrel's readers, in the form a store hands them back (one
    event per ``event_id``, the first; ordered by time, then ``event_id``), and each
    record's event ids (none when the reader rejected it)."""
    ids: list[list[str]] = [[] for _ in records]
    tables: list[pa.Table] = []
    for fmt in sorted({r.fmt for r in records}):
        idx = [i for i, r in enumerate(records) if r.fmt == fmt]
        data = b"\n".join(scrub(records[i].raw) for i in idx)
        source = Source(f"eval.{fmt}", lambda d=data: io.BytesIO(d), len(data))  # type: ignore[misc]
        by_raw: dict[str, list[str]] = {}
        for chunk in READERS[fmt]().read(source):
            tables.append(chunk.batch.select(SCHEMA.names).cast(SCHEMA))
            raws = chunk.batch.column("raw").to_pylist()
            for raw, eid in zip(raws, chunk.batch.column("event_id").to_pylist(), strict=True):
                by_raw.setdefault(_key(fmt, raw), []).append(eid)
        for i in idx:
            ids[i] = by_raw.get(_key(fmt, scrub(records[i].raw).decode()), [])
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return _stored(table), ids


def _ingest(store: Store, records: list[Record]) -> list[list[str]]:
    """Read the records with Kestrel's readers into ``store``; each record's event ids (for
    the tests and benches that need a store of labelled data)."""
    batch, ids = _read(records)
    store.append(batch)
    return ids


def _stored(table: Batch) -> Batch:
    """The first row of each ``event_id`` (a store keeps one), ordered as the runner reads."""
    rows = pa.table({"id": table.column("event_id"), "i": pa.array(range(table.num_rows))})
    first = rows.group_by("id", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return table.take(first).sort_by([("time", "ascending"), ("event_id", "ascending")])


def _key(fmt: str, raw: str) -> str:
    """How a record is found again among the events: its JSON with sorted keys and no
    spaces (a reader may keep ``raw`` in a canonical form, not as the file spelt it); for
    metric rows (one event per metric) the row's ``sample_id`` or its timestamp + host."""
    try:
        row = json.loads(raw)
    except ValueError:
        return raw
    if fmt != "metrics" or not isinstance(row, dict):
        return json.dumps(row, sort_keys=True, separators=(",", ":"))
    return str(row.get("sample_id") or (row.get("timestamp"), row.get("host")))


def _hits(findings: list[Finding]) -> dict[str, list[tuple[str, tuple[str, ...], int]]]:
    """Per event id: (detector, signal names, severity) of each finding naming it."""
    out: dict[str, list[tuple[str, tuple[str, ...], int]]] = {}
    for f in findings:
        names = tuple(s.name for s in f.signals)
        for e in f.evidence:
            out.setdefault(e, []).append((f.detector, names, int(f.severity)))
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


def _without_sigma(outcomes: list[Outcome]) -> dict[str, Any]:
    """Event and label scores of Kestrel's own detectors, the Sigma rules' flags left out."""
    own = [Outcome(o.group, o.record, tuple(d for d in o.detectors if d != "sigma"),
                   tuple(s for s in o.signals if not s.startswith("sigma:")), o.rejected,
                   tuple(ds for ds in o.severities if ds[0] != "sigma"))
           for o in outcomes]  # fmt: skip
    fps = [_brief(o) for o in own if o.flagged and not o.record.positive]
    misses = [_brief(o) for o in own if o.record.positive and not o.flagged]
    return {"event": _scores(own), "technique": _labels(own), "misses": misses,
            "false_positives": fps, "by_severity": _by_severity(own),
            "label_conflicts": _conflicts(own)}  # fmt: skip


def _conflicts(outcomes: list[Outcome]) -> dict[str, Any]:
    """The records scored positive because their event is another rule's positive case
    (`Record.conflict`), and the event scores with every record labelled as written."""
    moved = [o for o in outcomes if o.record.conflict]
    as_written = [replace(o, record=replace(o.record, positive=False, conflict=""))
                  if o.record.conflict else o for o in outcomes]  # fmt: skip
    return {"records": len(moved),
            "flagged": sum(o.flagged for o in moved),
            "cases": [{**_brief(o), "positive_for": o.record.conflict} for o in moved],
            "event_as_labelled": _scores(as_written)}  # fmt: skip


def _by_severity(outcomes: list[Outcome]) -> dict[str, Any]:
    """Event scores counting only the records a finding of at least medium / high severity
    names: what an alert queue that leaves out low findings (hunting leads) would see."""
    out = {}
    for name, floor in (("medium", Severity.MEDIUM), ("high", Severity.HIGH)):
        kept = [o if (o.severity or 0) >= floor else Outcome(o.group, o.record)
                for o in outcomes]  # fmt: skip
        out[name] = _scores(kept)
    return out


def _brief(o: Outcome) -> dict[str, Any]:
    return {"group": o.group, "label": o.record.label, "key": o.record.key,
            "detectors": list(o.detectors), "signals": list(o.signals),
            "severity": Severity(o.severity).name.lower() if o.severity is not None else None,
            "rejected_by_reader": o.rejected}  # fmt: skip


def signal_counts(evaluation: Evaluation) -> Counter[str]:
    """How often each signal fired on a flagged record (for the text report)."""
    return Counter(s for o in evaluation.outcomes if o.scored for s in o.signals)
