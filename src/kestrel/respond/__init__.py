"""Stage 5, respond: findings in, playbook runs out, every decision audited.

A finding is matched against YAML playbooks (`kestrel.respond.playbook`); each matching
playbook's steps are templated from the finding, checked against the policy
(`kestrel.respond.policy`: dry run by default, allow-lists, approvals, rate limits) and
only then run by an action (`kestrel.respond.actions`). The audit log
(`kestrel.respond.audit`) is append-only and hash-chained.

Must never: run an action the policy does not allow, act without writing the audit record,
or reach a side effect except through the injected action objects.
"""

from kestrel.respond.actions import ACTIONS, Environment, build_actions, recording_actions
from kestrel.respond.audit import AuditLog, VerifyReport
from kestrel.respond.executor import PlaybookExecutor
from kestrel.respond.playbook import Playbook, load_playbook, load_playbooks, parse_playbook
from kestrel.respond.policy import Policy, PolicyEngine, Verdict, load_policy
from kestrel.respond.quarantine import Quarantine
from kestrel.respond.runs import Run, RunStatus, RunStore

__all__ = [
    "ACTIONS",
    "AuditLog",
    "Environment",
    "Playbook",
    "PlaybookExecutor",
    "Policy",
    "PolicyEngine",
    "Quarantine",
    "Run",
    "RunStatus",
    "RunStore",
    "Verdict",
    "VerifyReport",
    "build_actions",
    "load_playbook",
    "load_playbooks",
    "load_policy",
    "parse_playbook",
    "recording_actions",
]
