"""What every response action is: a static `ActionSpec` (name, scope, the parameter that
allow-lists match, a strict parameter model) and an object that runs it.

Why the split: a playbook is validated against the specs alone (no firewall, no AWS client
needed to say "unknown parameter"), and the objects that do the work are built with their
side-effect interfaces injected (a `Firewall`, an IAM client, a webhook poster), so tests
pass in-memory ones instead of patching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from kestrel.errors import ActionError

Scope = Literal["endpoint", "cloud", "notify"]


class Params(BaseModel):
    """Base of every action's parameters: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """The static description of an action.

    Attributes:
        name: the name playbooks use (``kill_process``).
        scope: ``endpoint`` actions run on the host (by the agent), ``cloud`` ones through the
            provider SDK, ``notify`` ones post to a webhook.
        target: the parameter whose value the policy's allow-list is matched against.
        params: the strict parameter model.
        undo: the action that reverses this one, if any (used by ``rollback`` hints).
    """

    name: str
    scope: Scope
    target: str
    params: type[Params]
    doc: str
    undo: str | None = None

    def check(self, raw: Mapping[str, Any]) -> Params:
        """Validated parameters, or `ActionError` naming the bad parameter."""
        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            raise ActionError(f"{self.name}: {describe(exc, 'params')}") from exc

    def field_names(self) -> tuple[set[str], set[str]]:
        """(every parameter name, the required ones): for checking templated params at load."""
        fields = self.params.model_fields
        return set(fields), {n for n, f in fields.items() if f.is_required()}


def describe(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic's errors as ``field.path: message`` lines, the path first so it is seen."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        lines.append(f"{path}: {err['msg']}")
    return "; ".join(lines)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did: ``ok``, one line for people, and data for the audit log (and for
    an undo, e.g. the quarantine id)."""

    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class Action(Protocol):
    """A runnable action: its spec, and ``run`` over already-validated parameters."""

    @property
    def spec(self) -> ActionSpec:
        """The action's static description."""
        ...

    def run(self, params: Any) -> ActionResult:
        """Do it; raise `ActionError` on failure (never return ``ok=False`` silently)."""
        ...


@dataclass(slots=True)
class RecordingAction:
    """An in-memory action for `kestrel playbook test` and tests: it records each call and
    succeeds, or fails with ``fail`` as the message. No side effects."""

    spec: ActionSpec
    fail: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def run(self, params: Any) -> ActionResult:
        values = params.model_dump(mode="json") if isinstance(params, BaseModel) else params
        self.calls.append(values)
        if self.fail is not None:
            raise ActionError(f"{self.spec.name}: {self.fail}")
        return ActionResult(True, f"recorded {self.spec.name}", {"recorded": values})
