"""Playbook runs: what one playbook did (or waits to do) for one finding, kept as one JSON
file per run so that ``kestrel approve RUN_ID`` in another process can resume it.

Why files rather than memory: an approval may come hours later, from another shell or the
API, and must resume exactly the run the analyst was shown: the same playbook (stored
whole, not looked up again by name) and the same templating context.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kestrel.errors import ActionError
from kestrel.respond.playbook import Playbook

_RUN_ID = re.compile(r"^r-[0-9a-f]{12}$")


class RunStatus(StrEnum):
    """Where a run stands."""

    PENDING_APPROVAL = "pending_approval"
    COMPLETED = "completed"
    PARTIAL = "partial"  # finished, but a step with on_error: continue did not succeed
    FAILED = "failed"
    COOLDOWN = "cooldown"


@dataclass(slots=True)
class StepOutcome:
    """One step: the policy's verdict and why, and what the action did."""

    phase: str  # "steps" or "rollback"
    index: int
    action: str
    verdict: str
    reason: str
    ok: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    """One playbook run for one finding."""

    run_id: str
    playbook: Playbook
    finding_id: str
    entity: str
    context: dict[str, Any]
    created: float
    status: RunStatus = RunStatus.COMPLETED
    approved_by: str | None = None
    outcomes: list[StepOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the playbook as its validated model dump)."""
        doc = {k: getattr(self, k) for k in ("run_id", "finding_id", "entity", "context",
                                             "created", "approved_by")}  # fmt: skip
        doc["status"] = str(self.status)
        doc["playbook"] = self.playbook.model_dump(mode="json")
        doc["outcomes"] = [asdict(o) for o in self.outcomes]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Run:
        """The inverse of `to_json`."""
        return cls(
            run_id=doc["run_id"], playbook=Playbook.model_validate(doc["playbook"]),
            finding_id=doc["finding_id"], entity=doc["entity"], context=doc["context"],
            created=doc["created"], status=RunStatus(doc["status"]),
            approved_by=doc["approved_by"], outcomes=[StepOutcome(**o) for o in doc["outcomes"]],
        )  # fmt: skip


def new_run_id() -> str:
    """``r-`` and 12 random hex digits."""
    return f"r-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class RunStore:
    """One JSON file per run in ``folder``, replaced atomically on every save."""

    folder: Path

    def save(self, run: Run) -> None:
        """Write (or rewrite) a run."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{run.run_id}.tmp"
        tmp.write_text(json.dumps(run.to_json(), indent=1, default=str))
        tmp.replace(self._path(run.run_id))

    def load(self, run_id: str) -> Run:
        """A saved run; `ActionError` when there is none by that id."""
        path = self._path(run_id)
        if not path.is_file():
            raise ActionError(f"no playbook run {run_id!r} in {self.folder}")
        return Run.from_json(json.loads(path.read_text()))

    def all(self) -> list[Run]:
        """Every saved run, oldest first."""
        if not self.folder.is_dir():
            return []
        runs = [Run.from_json(json.loads(p.read_text())) for p in self.folder.glob("r-*.json")]
        return sorted(runs, key=lambda r: r.created)

    def last_started(self, playbook: str, entity: str) -> float | None:
        """When the newest run of ``playbook`` for ``entity`` started (for cooldowns)."""
        times = [r.created for r in self.all() if r.playbook.name == playbook
                 and r.entity == entity and r.status != RunStatus.COOLDOWN]  # fmt: skip
        return max(times, default=None)

    def _path(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise ActionError(f"not a run id: {run_id!r} (run ids look like r-0123456789ab)")
        return self.folder / f"{run_id}.json"
