"""`PlaybookExecutor`: findings in, playbook runs out, every decision in the audit log.

For each step the executor fills the templates, checks the parameters, asks the policy,
and only on ``execute`` calls the action. Actions are looked up in an injected mapping, so
the same executor drives real actions, actions forwarded to an agent
(`kestrel.respond.dispatch`) or in-memory recording ones (``kestrel playbook test``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kestrel.errors import ActionError
from kestrel.findings import Finding
from kestrel.respond.actions import ACTIONS, Action
from kestrel.respond.audit import AuditLog
from kestrel.respond.playbook import Playbook, Step, finding_context, render, triggered
from kestrel.respond.policy import PolicyEngine, Verdict
from kestrel.respond.runs import Run, RunStatus, RunStore, StepOutcome, new_run_id

_OK_VERDICTS = (Verdict.EXECUTE, Verdict.DRY_RUN)


@dataclass(slots=True)
class PlaybookExecutor:
    """Runs playbooks under a policy, with an audit log and a run store."""

    actions: Mapping[str, Action]
    audit: AuditLog
    runs: RunStore
    policy: PolicyEngine = field(default_factory=PolicyEngine)
    actor: str = "kestrel"
    clock: Callable[[], float] = time.time

    def respond(self, finding: Finding, playbooks: Sequence[Playbook],
                events: Sequence[Mapping[str, Any]] = ()) -> list[Run]:  # fmt: skip
        """Start every playbook whose trigger and conditions match ``finding``."""
        context = finding_context(finding, events)
        return [self.start(pb, finding, context) for pb in playbooks
                if triggered(pb, finding, context)]  # fmt: skip

    def start(self, playbook: Playbook, finding: Finding, context: dict[str, Any]) -> Run:
        """One run: cooldown check, approval gate, then the steps."""
        run = Run(new_run_id(), playbook, finding.finding_id, str(finding.entity), context,
                  self.clock())  # fmt: skip
        self._audit(run, "run_started", {"finding_id": run.finding_id, "entity": run.entity,
                                         "playbook": playbook.name})  # fmt: skip
        if self._cooling(run):
            run.status = RunStatus.COOLDOWN
            self._audit(run, "run_skipped", {"reason": f"cooldown {playbook.cooldown}s"})
            return run
        if self._needs_approval(playbook):
            run.status = RunStatus.PENDING_APPROVAL
            self.runs.save(run)
            self._audit(run, "approval_requested", {"steps": [s.action for s in playbook.steps]})
            return run
        return self._execute(run, approved=False)

    def approve(self, run_id: str, approver: str) -> Run:
        """Approve a waiting run and carry it out now."""
        run = self.runs.load(run_id)
        if run.status != RunStatus.PENDING_APPROVAL:
            raise ActionError(f"run {run_id} is {run.status}, not waiting for approval")
        run.approved_by = approver
        self.audit.append("approved", approver, {"playbook": run.playbook.name}, run.run_id)
        return self._execute(run, approved=True)

    def _cooling(self, run: Run) -> bool:
        if run.playbook.cooldown <= 0:
            return False
        last = self.runs.last_started(run.playbook.name, run.entity)
        return last is not None and run.created - last < run.playbook.cooldown

    def _needs_approval(self, playbook: Playbook) -> bool:
        gated = set(self.policy.policy.approval)
        return playbook.requires_approval or any(s.action in gated for s in playbook.steps)

    def _execute(self, run: Run, approved: bool) -> Run:
        run.status = RunStatus.COMPLETED
        for i, step in enumerate(run.playbook.steps):
            outcome = self._step(run, "steps", i, step, approved)
            if outcome.ok:
                continue
            on_error = step.on_error or run.playbook.on_error
            if on_error == "continue":
                run.status = RunStatus.PARTIAL
                continue
            run.status = RunStatus.FAILED
            if on_error == "rollback":
                self._rollback(run, approved)
            break
        self.runs.save(run)
        self._audit(run, "run_finished", {"status": str(run.status)})
        return run

    def _rollback(self, run: Run, approved: bool) -> None:
        self._audit(run, "rollback_started", {"steps": [s.action for s in run.playbook.rollback]})
        for i, step in enumerate(run.playbook.rollback):
            self._step(run, "rollback", i, step, approved)

    def _step(self, run: Run, phase: str, index: int, step: Step, approved: bool) -> StepOutcome:
        """Template, check, decide, act; audited at each point that can stop the step."""
        spec = ACTIONS[step.action]
        outcome = StepOutcome(phase, index, step.action, "", "", ok=False)
        try:
            raw = render(step.params, run.context)
            params = spec.check(raw)
        except KeyError as exc:
            return self._finish(run, outcome, "invalid", f"template: no value for {exc.args[0]}")
        except ActionError as exc:
            return self._finish(run, outcome, "invalid", str(exc))
        decision = self.policy.decide(
            spec,
            params.model_dump(mode="json"),
            approved=approved,
            playbook_approval=run.playbook.requires_approval,
        )
        outcome.data = {"params": params.model_dump(mode="json")}
        if decision.verdict is Verdict.DRY_RUN:
            outcome.ok, outcome.detail = True, f"would run {step.action}"
        if decision.verdict is not Verdict.EXECUTE:
            return self._finish(run, outcome, str(decision.verdict), decision.reason)
        return self._act(run, outcome, params, decision.reason)

    def _act(self, run: Run, outcome: StepOutcome, params: Any, reason: str) -> StepOutcome:
        action = self.actions.get(outcome.action)
        if action is None:
            return self._finish(run, outcome, "error", f"{outcome.action} cannot run here")
        try:
            result = action.run(params)
        except ActionError as exc:
            return self._finish(run, outcome, "error", str(exc))
        except Exception as exc:  # an action bug must be audited, not crash the responder
            return self._finish(run, outcome, "error", f"{type(exc).__name__}: {exc}")
        outcome.ok, outcome.detail = result.ok, result.detail
        outcome.data = {**outcome.data, "result": result.data}
        return self._finish(run, outcome, str(Verdict.EXECUTE), reason)

    def _finish(self, run: Run, outcome: StepOutcome, verdict: str, reason: str) -> StepOutcome:
        outcome.verdict, outcome.reason = verdict, reason
        run.outcomes.append(outcome)
        self._audit(run, "step", {"phase": outcome.phase, "index": outcome.index,
                                  "action": outcome.action, "verdict": verdict,
                                  "reason": reason, "ok": outcome.ok,
                                  "detail": outcome.detail, "data": outcome.data})  # fmt: skip
        return outcome

    def _audit(self, run: Run, event: str, data: dict[str, Any]) -> None:
        self.audit.append(event, self.actor, data, run.run_id)
