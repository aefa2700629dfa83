"""Sigma rule sets on and off: which of the server's rule sets the detectors load, kept as
the ``sigma.rule_sets`` policy (``{path: true|false}``; a set not named is on).

Why a policy and not a new table: policies already keep history, are audited on every
change and are read by the pipeline; the rule sets themselves are the paths of
``$KESTREL_SIGMA_RULES`` (or `ApiSettings.sigma_rules`), the same choice `kestrel detect`
makes without ``--rules``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kestrel.api.deps import ApiState
from kestrel.api.schemas import RuleSetOut
from kestrel.detect.sigma.detector import default_rule_paths

POLICY = "sigma.rule_sets"


class RulePolicyError(ValueError):
    """A ``sigma.rule_sets`` value that is not ``{path: bool}`` (422)."""


def available(state: ApiState) -> tuple[str, ...]:
    """The server's rule sets: the settings' paths, else ``$KESTREL_SIGMA_RULES``."""
    return state.settings.sigma_rules or default_rule_paths()


def is_set(state: ApiState) -> bool:
    """Whether anyone has switched rule sets at all."""
    with state.lock:
        return POLICY in state.mgmt.policies()


def switches(state: ApiState) -> dict[str, bool]:
    """The policy's value (``{}`` when never set)."""
    with state.lock:
        value = state.mgmt.policies().get(POLICY, {})
    return value if isinstance(value, dict) else {}


def enabled(state: ApiState) -> tuple[str, ...]:
    """The rule sets the Sigma detector should load now."""
    on = switches(state)
    return tuple(p for p in available(state) if on.get(p, True))


def rule_sets(state: ApiState) -> list[RuleSetOut]:
    """Every rule set with its switch and whether the path is there at all."""
    on = switches(state)
    return [RuleSetOut(path=p, enabled=on.get(p, True), exists=Path(p).exists())
            for p in available(state)]  # fmt: skip


def check_value(value: Any) -> None:
    """Refuse a malformed ``sigma.rule_sets`` value before it is stored: the detection
    loop would otherwise read it on every tick."""
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    )
    if not ok:
        raise RulePolicyError(f"{POLICY} is an object of rule set path → true / false")
