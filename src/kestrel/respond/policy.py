"""The response policy: what may run for real, on what, how often, and with whose approval.

Safe by default: with no policy file every action is a dry run; in a policy file an action
missing from ``allow`` is refused outright (audited, never run, not even as a dry run).
Decisions are taken in this order, and the first that applies wins:

1. the action or its target is not in ``allow``            → deny
2. the action (or the playbook) needs an approval not given → wait for approval
3. ``mode: dry_run``, or the action is listed in ``dry_run`` → dry run
4. the action's rate limit is spent                          → deny (rate limited)
5. otherwise                                                  → execute
"""

from __future__ import annotations

import fnmatch
import ipaddress
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from kestrel.errors import PlaybookError
from kestrel.respond.actions import ACTIONS
from kestrel.respond.actions.base import ActionSpec, describe
from kestrel.respond.playbook import ExactModel, parse_duration


class RateLimit(ExactModel):
    """At most ``count`` executions per ``per`` seconds (``"1m"`` works too)."""

    count: Annotated[int, Field(ge=1)]
    per: Annotated[int, Field(ge=1)]

    @field_validator("per", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class Policy(ExactModel):
    """The policy file's model (see the module docstring for how it decides)."""

    mode: Literal["dry_run", "enforce"] = "dry_run"
    allow: dict[str, list[str]] = Field(default_factory=dict)  # action → target patterns
    dry_run: list[str] = Field(default_factory=list)
    approval: list[str] = Field(default_factory=list)
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)

    @field_validator("allow", "rate_limits")
    @classmethod
    def _known_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_names(value)
        return value

    @field_validator("dry_run", "approval")
    @classmethod
    def _known_items(cls, value: list[str]) -> list[str]:
        _check_names(value)
        return value


def _check_names(names: Any) -> None:
    unknown = sorted(set(names) - set(ACTIONS))
    if unknown:
        raise ValueError(f"unknown action(s) {unknown} (known: {', '.join(sorted(ACTIONS))})")


def default_policy() -> Policy:
    """No policy file: every known action may be *shown*, none runs (all dry run)."""
    return Policy(mode="dry_run", allow={name: ["*"] for name in ACTIONS})


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path``; `default_policy` (everything a dry run) when None."""
    if path is None:
        return default_policy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Policy.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise PlaybookError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        raise PlaybookError(f"{path}: {describe(exc)}") from exc


class Verdict(StrEnum):
    """What the policy decided for one step."""

    EXECUTE = "execute"
    DRY_RUN = "dry_run"
    APPROVAL = "needs_approval"
    DENY = "deny"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict and the reason, as the audit log shows it."""

    verdict: Verdict
    reason: str


def target_allowed(value: str, patterns: list[str]) -> bool:
    """Whether ``value`` matches a glob, or lies in a network pattern (``10.0.0.0/8``)."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(value, pattern) or _in_network(value, pattern):
            return True
    return False


def _in_network(value: str, pattern: str) -> bool:
    try:
        net = ipaddress.ip_network(pattern, strict=False)
        addr = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return addr.version == net.version and addr.subnet_of(net)  # type: ignore[arg-type]


@dataclass(slots=True)
class PolicyEngine:
    """Decides each step; keeps the rate-limit windows of this process."""

    policy: Policy = field(default_factory=default_policy)
    clock: Callable[[], float] = time.monotonic
    _windows: dict[str, deque[float]] = field(default_factory=dict)

    def decide(self, spec: ActionSpec, params: Mapping[str, Any], *, approved: bool,
               playbook_approval: bool) -> Decision:  # fmt: skip
        """The decision for running ``spec`` with ``params`` (already templated)."""
        p = self.policy
        target = str(params.get(spec.target, ""))
        if spec.name not in p.allow:
            return Decision(Verdict.DENY, f"{spec.name} is not in the policy's allow-list")
        if not target_allowed(target, p.allow[spec.name]):
            return Decision(Verdict.DENY, f"{spec.target} {target!r} is not allowed for "
                            f"{spec.name} (allowed: {p.allow[spec.name]})")  # fmt: skip
        if (playbook_approval or spec.name in p.approval) and not approved:
            return Decision(Verdict.APPROVAL, f"{spec.name} needs an approval")
        if p.mode == "dry_run" or spec.name in p.dry_run:
            why = "policy mode" if p.mode == "dry_run" else "action listed in dry_run"
            return Decision(Verdict.DRY_RUN, f"dry run ({why})")
        return self._spend(spec.name)

    def _spend(self, name: str) -> Decision:
        limit = self.policy.rate_limits.get(name)
        if limit is None:
            return Decision(Verdict.EXECUTE, "allowed by policy")
        now = self.clock()
        window = self._windows.setdefault(name, deque())
        while window and window[0] <= now - limit.per:
            window.popleft()
        if len(window) >= limit.count:
            return Decision(Verdict.RATE_LIMITED,
                            f"{name}: {limit.count} per {limit.per}s already used")  # fmt: skip
        window.append(now)
        return Decision(Verdict.EXECUTE, "allowed by policy")
