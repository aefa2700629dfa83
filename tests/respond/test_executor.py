"""The executor under a policy: dry run by default, never outside the allow-list, rate
limits, approvals, on_error and rollback, cooldown; every decision in a valid audit chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.respond.conftest import make_finding

from kestrel.errors import ActionError
from kestrel.respond import (
    AuditLog,
    PlaybookExecutor,
    PolicyEngine,
    RunStatus,
    RunStore,
    Verdict,
    parse_playbook,
)
from kestrel.respond.actions import RecordingAction, recording_actions
from kestrel.respond.policy import Policy, RateLimit

KILL_AND_QUARANTINE = """
name: kq
trigger: {}
steps:
  - {action: kill_process, params: {pid: "{{ event.process_pid }}", name: "{{ event.name }}"}}
  - {action: quarantine_file, params: {path: "{{ event.path }}"}}
rollback:
  - {action: notify, params: {url: "http://127.0.0.1:9/h", message: "rolled back"}}
"""
EVENT = {"process_pid": 4242, "name": "evil", "path": "/tmp/evil"}


def _executor(tmp_path: Path, policy: Policy, **actions: RecordingAction) -> PlaybookExecutor:
    found = {**recording_actions(), **actions}
    return PlaybookExecutor(found, AuditLog(tmp_path / "a.jsonl"), RunStore(tmp_path / "r"),
                            PolicyEngine(policy))  # fmt: skip


def _calls(ex: PlaybookExecutor, name: str) -> list[dict[str, object]]:
    action = ex.actions[name]
    assert isinstance(action, RecordingAction)
    return action.calls


def test_without_a_policy_everything_is_a_dry_run(tmp_path: Path):
    ex = _executor(tmp_path, PolicyEngine().policy)
    [run] = ex.respond(make_finding(), [parse_playbook(KILL_AND_QUARANTINE)], [EVENT])
    assert [o.verdict for o in run.outcomes] == ["dry_run", "dry_run"]
    assert run.status == RunStatus.COMPLETED
    assert _calls(ex, "kill_process") == [] and _calls(ex, "quarantine_file") == []
    assert ex.audit.verify().ok


def test_an_action_outside_the_allow_list_never_runs(tmp_path: Path):
    policy = Policy(mode="enforce", allow={"kill_process": ["*"]})
    ex = _executor(tmp_path, policy)
    [run] = ex.respond(make_finding(), [parse_playbook(KILL_AND_QUARANTINE)], [EVENT])
    assert [o.verdict for o in run.outcomes] == ["execute", "deny"]
    assert "not in the policy's allow-list" in run.outcomes[1].reason
    assert _calls(ex, "quarantine_file") == []
    assert run.status == RunStatus.FAILED  # on_error: stop by default


def test_a_target_outside_the_allow_list_never_runs(tmp_path: Path):
    policy = Policy(mode="enforce", allow={"kill_process": ["nginx", "python*"],
                                           "quarantine_file": ["/var/tmp/*"]})  # fmt: skip
    ex = _executor(tmp_path, policy)
    pb = parse_playbook(
        KILL_AND_QUARANTINE.replace("trigger: {}", "trigger: {}\non_error: continue")
    )
    [run] = ex.respond(make_finding(), [pb], [EVENT])
    assert [o.verdict for o in run.outcomes] == ["deny", "deny"]
    assert "'evil' is not allowed" in run.outcomes[0].reason
    assert _calls(ex, "kill_process") == [] and _calls(ex, "quarantine_file") == []
    assert run.status == RunStatus.PARTIAL


def test_network_patterns_in_allow_lists(tmp_path: Path):
    from kestrel.respond.policy import target_allowed

    assert target_allowed("203.0.113.9", ["203.0.113.0/24"])
    assert not target_allowed("198.51.100.1", ["203.0.113.0/24"])
    assert not target_allowed("2001:db8::1", ["203.0.113.0/24"])
    assert target_allowed("/tmp/x", ["/tmp/*"]) and not target_allowed("/etc/x", ["/tmp/*"])


def test_rate_limit(tmp_path: Path):
    now = [1000.0]
    limit = RateLimit.model_validate({"count": 2, "per": "1m"})
    policy = Policy(
        mode="enforce", allow={"kill_process": ["*"]}, rate_limits={"kill_process": limit}
    )
    ex = _executor(tmp_path, policy)
    ex.policy.clock = lambda: now[0]
    pb = parse_playbook("name: k\ntrigger: {}\nsteps: [{action: kill_process, params: {pid: 9}}]")
    verdicts = [ex.respond(make_finding(), [pb])[0].outcomes[0].verdict for _ in range(3)]
    assert verdicts == ["execute", "execute", "rate_limited"]
    now[0] += 61
    assert ex.respond(make_finding(), [pb])[0].outcomes[0].verdict == "execute"
    assert len(_calls(ex, "kill_process")) == 3


def test_approval_waits_then_runs_when_approved(tmp_path: Path):
    policy = Policy(mode="enforce", allow={"isolate_host": ["*"]}, approval=["isolate_host"])
    ex = _executor(tmp_path, policy)
    pb = parse_playbook("name: iso\ntrigger: {}\nsteps: [{action: isolate_host, "
                        "params: {host: '{{ finding.entity.id }}'}}]")  # fmt: skip
    [run] = ex.respond(make_finding(), [pb])
    assert run.status == RunStatus.PENDING_APPROVAL and _calls(ex, "isolate_host") == []
    # a second process (the CLI) resumes the stored run
    again = _executor(tmp_path, policy)
    done = again.approve(run.run_id, "alice")
    assert done.status == RunStatus.COMPLETED and done.approved_by == "alice"
    assert _calls(again, "isolate_host") == [{"host": "web-01", "keep": []}]
    with pytest.raises(ActionError, match="not waiting for approval"):
        again.approve(run.run_id, "alice")
    events = [(r["event"], r["actor"]) for r in again.audit.records()]
    assert ("approved", "alice") in events
    assert again.audit.verify().ok


def test_rollback_on_error(tmp_path: Path):
    from kestrel.respond import ACTIONS

    failing = RecordingAction(ACTIONS["quarantine_file"], fail="disk on fire")
    allow = {"kill_process": ["*"], "quarantine_file": ["*"], "notify": ["*"]}
    ex = _executor(tmp_path, Policy(mode="enforce", allow=allow), quarantine_file=failing)
    pb = parse_playbook(KILL_AND_QUARANTINE + "on_error: rollback\n")
    [run] = ex.respond(make_finding(), [pb], [EVENT])
    assert run.status == RunStatus.FAILED
    assert [(o.phase, o.action, o.ok) for o in run.outcomes] == [
        ("steps", "kill_process", True), ("steps", "quarantine_file", False),
        ("rollback", "notify", True)]  # fmt: skip
    assert "disk on fire" in run.outcomes[1].reason


def test_a_template_without_a_value_stops_the_step(tmp_path: Path, executor: PlaybookExecutor):
    [run] = executor.respond(make_finding(), [parse_playbook(KILL_AND_QUARANTINE)], [])
    assert run.outcomes[0].verdict == "invalid"
    assert "no value for event.process_pid" in run.outcomes[0].reason


def test_bad_parameter_types_after_templating(executor: PlaybookExecutor):
    [run] = executor.respond(make_finding(), [parse_playbook(KILL_AND_QUARANTINE)],
                             [{**EVENT, "process_pid": "abc"}])  # fmt: skip
    assert run.outcomes[0].verdict == "invalid" and "params.pid" in run.outcomes[0].reason


def test_cooldown_per_entity(executor: PlaybookExecutor):
    pb = parse_playbook(KILL_AND_QUARANTINE + "cooldown: 10m\n")
    first = executor.respond(make_finding(), [pb], [EVENT])[0]
    second = executor.respond(make_finding(), [pb], [EVENT])[0]
    other_host = executor.respond(make_finding(entity="db-01"), [pb], [EVENT])[0]
    assert (first.status, second.status, other_host.status) == (
        RunStatus.COMPLETED, RunStatus.COOLDOWN, RunStatus.COMPLETED)  # fmt: skip


def test_every_decision_is_audited(executor: PlaybookExecutor):
    executor.respond(make_finding(), [parse_playbook(KILL_AND_QUARANTINE)], [EVENT])
    events = [r["event"] for r in executor.audit.records()]
    assert events == ["run_started", "step", "step", "run_finished"]
    steps = [r["data"] for r in executor.audit.records() if r["event"] == "step"]
    assert [s["verdict"] for s in steps] == [str(Verdict.EXECUTE)] * 2
    assert steps[0]["data"]["params"]["pid"] == 4242
