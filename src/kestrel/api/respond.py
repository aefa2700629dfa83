"""Playbooks, runs and approvals over the API: the same files the CLI reads and writes
(`kestrel playbook list`, `kestrel approve`), so an approval given in the dashboard resumes
the very run `kestrel playbook run` left waiting, and the responder's own audit log records
it beside the API's.

Why no in-memory cache: a run may be created or approved by another process at any time,
and the run store is a folder of small JSON files, cheap to read on each request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kestrel.api.auth import Principal
from kestrel.api.deps import ApiState
from kestrel.api.schemas import PlaybookOut, RunOut
from kestrel.errors import ActionError
from kestrel.respond import load_playbooks
from kestrel.respond.local import ResponsePaths, local_executor
from kestrel.respond.playbook import Playbook
from kestrel.respond.runs import Run, RunStatus, RunStore


class RunNotFoundError(LookupError):
    """No run by that id (404)."""


class RunStateError(ValueError):
    """A run that is not waiting for approval (409)."""


def playbooks(state: ApiState) -> list[PlaybookOut]:
    """The configured playbooks; a `PlaybookError` (a bad file) propagates to the caller."""
    found = load_playbooks([Path(p) for p in state.settings.playbooks])
    return [_playbook_out(pb) for pb in found]


def runs(state: ApiState, status: RunStatus | None = None) -> list[RunOut]:
    """Runs newest first, optionally only those in ``status``."""
    store = _run_store(state)
    every = store.all() if store is not None else []
    return [_run_out(r) for r in reversed(every) if status is None or r.status == status]


def approve(state: ApiState, run_id: str, who: Principal) -> RunOut:
    """Approve a waiting run and carry it out now, under the server's response policy."""
    root = state.settings.response_home
    if root is None:
        raise RunNotFoundError(f"no playbook run {run_id} (no responder configured)")
    policy = state.settings.response_policy
    executor = local_executor(ResponsePaths(Path(root)), Path(policy) if policy else None,
                              who.actor)  # fmt: skip
    _waiting(executor.runs, run_id)
    done = executor.approve(run_id, who.actor)
    with state.lock:
        state.mgmt.audit(who.actor, "run.approve", run_id,
                         {"playbook": done.playbook.name, "status": str(done.status)})  # fmt: skip
    return _run_out(done)


def _waiting(store: RunStore, run_id: str) -> None:
    try:
        run = store.load(run_id)
    except ActionError as exc:
        raise RunNotFoundError(str(exc)) from None
    if run.status != RunStatus.PENDING_APPROVAL:
        raise RunStateError(f"run {run_id} is {run.status}, not waiting for approval")


def _run_store(state: ApiState) -> RunStore | None:
    root = state.settings.response_home
    return RunStore(ResponsePaths(Path(root)).runs) if root is not None else None


def _playbook_out(pb: Playbook) -> PlaybookOut:
    trigger = {k: v for k, v in pb.trigger.model_dump().items() if v}
    return PlaybookOut(name=pb.name, description=pb.description, trigger=trigger,
                       steps=[s.action for s in pb.steps], requires_approval=pb.requires_approval,
                       cooldown=pb.cooldown)  # fmt: skip


def _run_out(run: Run) -> RunOut:
    outcomes: list[dict[str, Any]] = [
        {"step": f"{o.phase}.{o.index}", "action": o.action, "verdict": o.verdict,
         "ok": o.ok, "detail": o.detail or o.reason}
        for o in run.outcomes
    ]  # fmt: skip
    return RunOut(run_id=run.run_id, playbook=run.playbook.name, finding_id=run.finding_id,
                  entity=run.entity, status=str(run.status), approved_by=run.approved_by,
                  created=datetime.fromtimestamp(run.created, UTC), outcomes=outcomes)  # fmt: skip
