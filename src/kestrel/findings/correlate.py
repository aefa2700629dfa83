"""Merging repeated findings: the same entity, detector and (overlapping) window is one
finding, not a pile. Signals keep their strongest value, evidence and techniques are unioned,
and severity is recomputed from the merged signals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from kestrel.findings.model import Finding, Signal
from kestrel.findings.severity import severity_for


def merge_findings(findings: Iterable[Finding], gap: timedelta = timedelta(0)) -> list[Finding]:
    """Merge findings of one detector and entity whose time spans overlap or lie within
    ``gap`` of each other; order: by first seen."""
    ordered = sorted(findings, key=lambda f: (f.detector, str(f.entity), f.first_seen))
    out: list[Finding] = []
    for f in ordered:
        last = out[-1] if out else None
        if last and _same(last, f) and f.first_seen <= last.last_seen + gap:
            out[-1] = merge_two(last, f)
        else:
            out.append(f)
    return sorted(out, key=lambda f: f.first_seen)


def _same(a: Finding, b: Finding) -> bool:
    return a.detector == b.detector and a.entity == b.entity


def merge_two(a: Finding, b: Finding) -> Finding:
    """One finding covering both."""
    signals = _merge_signals(a.signals + b.signals)
    pairs = dict(zip(a.evidence, a.source_ids or ("",) * len(a.evidence), strict=True))
    pairs.update(zip(b.evidence, b.source_ids or ("",) * len(b.evidence), strict=True))
    has_sources = bool(a.source_ids or b.source_ids)
    return replace(
        a,
        first_seen=min(a.first_seen, b.first_seen),
        last_seen=max(a.last_seen, b.last_seen),
        signals=signals,
        title=merge_titles(a.title, b.title),
        severity=max(severity_for(signals), a.severity, b.severity),
        techniques=tuple(dict.fromkeys(a.techniques + b.techniques)),
        evidence=tuple(pairs),
        source_ids=tuple(pairs.values()) if has_sources else (),
        tags=tuple(dict.fromkeys(a.tags + b.tags)),
        key=_kept_key(a, b),
    )


def _kept_key(a: Finding, b: Finding) -> str | None:
    """The merged finding answers to the key of the earlier stored one (``a`` is first by
    time), so a span that grows keeps the id its statuses were recorded under."""
    return a.key or b.key


def merge_titles(a: str, b: str) -> str:
    """``"GPU hijack: x, y"`` + ``"GPU hijack: y, z"`` → ``"GPU hijack: x, y, z"``, so a merged
    finding's title names everything it found; titles of another shape keep the first.

    >>> merge_titles("New behaviour: a", "New behaviour: b, a")
    'New behaviour: a, b'
    """
    head_a, sep_a, tail_a = a.partition(": ")
    head_b, sep_b, tail_b = b.partition(": ")
    if not (sep_a and sep_b and head_a == head_b):
        return a or b
    parts = dict.fromkeys([*tail_a.split(", "), *tail_b.split(", ")])
    return f"{head_a}: {', '.join(parts)}"


def _merge_signals(signals: tuple[Signal, ...]) -> tuple[Signal, ...]:
    """One signal per name: the one with the largest numeric value (or the first)."""
    best: dict[str, Signal] = {}
    for s in signals:
        old = best.get(s.name)
        if old is None or _stronger(s, old):
            best[s.name] = s
    return tuple(best.values())


def _stronger(new: Signal, old: Signal) -> bool:
    if isinstance(new.value, (int, float)) and isinstance(old.value, (int, float)):
        return abs(new.value) > abs(old.value)
    return False
