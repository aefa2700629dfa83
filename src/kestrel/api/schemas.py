"""The API's documents: pydantic models at the edge only (the core passes dataclasses).

Each model says what a client gets; `from_*` helpers turn the internal dataclasses into
them, so a change inside Kestrel cannot silently change the published OpenAPI schema.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kestrel.findings import Finding, Signal


class Problem(BaseModel):
    """An error answer: what went wrong, and for bad data which records and why."""

    detail: str | list[dict[str, Any]]
    rejections: list[dict[str, Any]] = Field(default_factory=list)


class IntakeResult(BaseModel):
    """What one intake request did."""

    format: str
    read: int
    stored: int
    duplicates: int
    rejected: int
    rejections: list[dict[str, Any]] = Field(
        default_factory=list, description="The first 100 rejected records: record, line, reason"
    )


class Status(StrEnum):
    """A finding's place in the triage workflow."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


# Which status may follow which; reopening goes back to acknowledged.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.ACKNOWLEDGED, Status.RESOLVED, Status.FALSE_POSITIVE}),
    Status.ACKNOWLEDGED: frozenset({Status.RESOLVED, Status.FALSE_POSITIVE}),
    Status.RESOLVED: frozenset({Status.ACKNOWLEDGED}),
    Status.FALSE_POSITIVE: frozenset({Status.ACKNOWLEDGED}),
}


class EntityOut(BaseModel):
    """An entity reference: ``(type, id)`` as in the event schema."""

    type: str
    id: str


class SignalOut(BaseModel):
    """One piece of evidence: its value, and the threshold it crossed."""

    name: str
    value: float | str
    threshold: float | None
    detail: str
    kind: str

    @classmethod
    def from_signal(cls, s: Signal) -> SignalOut:
        """From the internal `Signal`."""
        return cls(name=s.name, value=s.value, threshold=s.threshold, detail=s.detail,
                   kind=getattr(s, "kind", "rule"))  # fmt: skip


class FindingOut(BaseModel):
    """A finding in a list."""

    finding_id: str
    detector: str
    title: str
    entity: EntityOut
    severity: str
    status: Status
    first_seen: datetime
    last_seen: datetime
    techniques: list[str]
    tags: list[str]
    evidence_count: int

    @classmethod
    def from_finding(cls, f: Finding, status: Status) -> FindingOut:
        """From the internal `Finding` and its current status."""
        return cls(
            finding_id=f.finding_id, detector=f.detector, title=f.title or f.detector,
            entity=EntityOut(type=f.entity.type, id=f.entity.id), severity=str(f.severity),
            status=status, first_seen=f.first_seen, last_seen=f.last_seen,
            techniques=list(f.techniques), tags=list(f.tags), evidence_count=len(f.evidence),
        )  # fmt: skip


class StatusChangeOut(BaseModel):
    """One step of the workflow."""

    status: Status
    note: str
    actor: str
    time: datetime
    finding_id: str | None = Field(
        default=None, description="The finding it was recorded on (one a merge folded in)"
    )


class SuppressionOut(BaseModel):
    """A false positive fed back to detection: which signals it covers, until when."""

    finding_id: str
    signals: list[str]
    note: str
    actor: str
    time: datetime
    expires: datetime | None
    active: bool


class FindingDetail(FindingOut):
    """A finding with its signals, evidence events, status history and the suppressions
    that hold for its detector and entity."""

    signals: list[SignalOut]
    evidence: list[str]
    evidence_events: list[dict[str, Any]]
    history: list[StatusChangeOut]
    window_seconds: int | None = None
    suppressions: list[SuppressionOut] = Field(default_factory=list)


class FindingPage(BaseModel):
    """A page of findings and how many matched in all."""

    total: int
    items: list[FindingOut]


class StatusUpdate(BaseModel):
    """A request to move a finding on in the workflow."""

    model_config = ConfigDict(extra="forbid")
    status: Status
    note: str = Field(default="", max_length=4000)
    suppress_days: int | None = Field(
        default=None, ge=1, le=3650,
        description="With false_positive: the suppression ends after this many days "
        "(default: it holds until removed)",
    )  # fmt: skip


class EntitySummary(BaseModel):
    """An entity seen in the events."""

    type: str
    id: str
    events: int
    first_seen: datetime | None
    last_seen: datetime | None
    findings: int


class EntityProfile(EntitySummary):
    """One entity: what it does, which findings it has, its baselines where known."""

    by_class: dict[str, int]
    sources: list[str]
    hosts: list[str]
    baselines: list[dict[str, Any]]
    finding_items: list[FindingOut]


class TimelinePoint(BaseModel):
    """Events of one class in one time bucket."""

    bucket: datetime
    event_class: str
    events: int


class TokenCreate(BaseModel):
    """A request for a new token."""

    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(admin|analyst|agent)$")
    name: str = Field(min_length=1, max_length=200)
    ttl_hours: float | None = Field(default=None, gt=0, le=24 * 3650)
    agent_id: str | None = Field(default=None, max_length=200)


class TokenOut(BaseModel):
    """A token's public part (never its secret or hash)."""

    token_id: str
    name: str
    role: str
    agent_id: str | None
    created: datetime
    expires: datetime | None
    revoked: bool


class TokenCreated(TokenOut):
    """A new token: ``token`` is shown this once and never stored."""

    token: str


class AgentOut(BaseModel):
    """An agent in the inventory."""

    agent_id: str
    host: str | None
    version: str | None
    facts: dict[str, Any]
    first_seen: datetime
    last_seen: datetime


class ActionCreate(BaseModel):
    """An action to queue for an agent."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern="^(isolate_host|release_host|kill_process|quarantine_file|block_ip)$")
    params: dict[str, Any] = Field(default_factory=dict)


class ActionOut(BaseModel):
    """An action queued for an agent."""

    action_id: str
    agent_id: str
    kind: str
    params: dict[str, Any]
    status: str
    created: datetime


class AuditLine(BaseModel):
    """One audit log line."""

    time: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class PolicyValue(BaseModel):
    """A policy's value (detector thresholds, enrichers, response permissions ...)."""

    model_config = ConfigDict(extra="forbid")
    value: Any


class Ready(BaseModel):
    """Readiness: the store answers and how many events it holds."""

    ready: bool
    events: int


class HuntRequest(BaseModel):
    """Hunt text to run over the store, and how many rows each table may bring back."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=100_000)
    max_rows: int = Field(default=100, ge=1, le=1000, description="Rows kept per table")


class HuntTable(BaseModel):
    """A table a hunt displays (DISP, INFO, DESCRIBE): its first rows and the total."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    truncated: bool


class HuntText(BaseModel):
    """Text a hunt displays (EXPLAIN's SQL, an analytics' message)."""

    title: str
    text: str


class HuntResult(BaseModel):
    """What a hunt displayed, in order."""

    displays: list[HuntTable | HuntText]


class HuntProblem(BaseModel):
    """A hunt that cannot run: the message, and where (line and column, 1-based; 0 when
    the error has no place); a request that is not valid JSON has only ``detail``."""

    detail: str | list[dict[str, Any]]
    line: int = 0
    column: int = 0
    hint: str = ""
    expected: list[str] = Field(default_factory=list)
    reason: Literal["invalid", "time_limit"] = Field(
        default="invalid",
        description="invalid: the hunt cannot run as written; time_limit: it was stopped "
        "after the server's hunt time limit (ApiSettings.hunt_seconds)",
    )


class PlaybookOut(BaseModel):
    """A response playbook: what starts it, its steps, whether a person must approve."""

    name: str
    description: str
    trigger: dict[str, Any]
    steps: list[str]
    requires_approval: bool
    cooldown: int


class RunOut(BaseModel):
    """A playbook run for one finding; ``pending_approval`` runs wait for an admin."""

    run_id: str
    playbook: str
    finding_id: str
    entity: str
    status: str
    approved_by: str | None
    created: datetime
    outcomes: list[dict[str, Any]]


class RuleSetOut(BaseModel):
    """A Sigma rule set (file, folder or zip) and whether the detectors load it."""

    path: str
    enabled: bool
    exists: bool
