"""One finding type for every detector: who, what, when, why, how bad, which techniques, and
the evidence. The "why" travels with the "what": a finding without signals is a bug."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from hashlib import blake2b


class Severity(IntEnum):
    """Ordered severities; compare them with < and >."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """From a name in any case (``"high"``), or Sigma's ``informational``.

        >>> Severity.parse("High"), Severity.parse("informational")
        (<Severity.HIGH: 3>, <Severity.INFO: 0>)
        """
        name = text.strip().upper()
        return cls.INFO if name == "INFORMATIONAL" else cls[name]

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Entity:
    """The thing a finding is about: ``(entity_type, entity_id)``, as in the event schema."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence for a finding, with its value and the threshold it crossed."""

    name: str  # "gpu_util.zscore", "sigma:<rule id>"
    value: float | str
    threshold: float | None = None
    detail: str = ""  # matched fields, baseline mean / std, ...
    # What kind of evidence this is, for severity (`kestrel.findings.severity`): "rule" (a
    # fixed threshold or rule), "baseline" (a deviation from the entity's own history),
    # "novelty" (first time seen for the entity), "sensitive" (a high-risk operation).
    kind: str = "rule"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector reports."""

    detector: str
    entity: Entity
    first_seen: datetime
    last_seen: datetime
    severity: Severity
    signals: tuple[Signal, ...]
    title: str = ""
    techniques: tuple[str, ...] = ()  # ATT&CK / ATLAS ids
    evidence: tuple[str, ...] = ()  # event_ids
    tags: tuple[str, ...] = field(default=())
    # The records' own ids in their sources, beside `evidence` (CloudTrail eventID, agent
    # event_id, EVTX file + record number); empty where the source has none.
    source_ids: tuple[str, ...] = ()
    window_seconds: int | None = None  # the window a windowed detector counted over
    # The id this finding keeps for life once stored: the id of its first stored span.
    # Merging a later span into it keeps the key, so statuses and suppressions attached to
    # the id still find it; left out of equality (it says where, not what).
    key: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.signals:
            raise ValueError(f"finding from {self.detector} for {self.entity} has no signals")
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")

    @property
    def finding_id(self) -> str:
        """The stable `key` once the finding has one, else `span_id`."""
        return self.key or self.span_id

    @property
    def span_id(self) -> str:
        """Deterministic id of this span: the same detector, entity, window and signals give
        the same id, so re-running detection over the same events does not duplicate
        findings. It changes when a merge widens the span, which is why a stored finding
        is addressed by `key` instead."""
        key = "\0".join(
            [
                self.detector,
                str(self.entity),
                self.first_seen.isoformat(),
                self.last_seen.isoformat(),
                *sorted(s.name for s in self.signals),
            ]
        )
        return blake2b(key.encode(), digest_size=12).hexdigest()
