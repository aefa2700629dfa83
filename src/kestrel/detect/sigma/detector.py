"""`SigmaDetector`: the Sigma engine behind the `Detector` contract (batches in, findings out).

Configured by its constructor (river style): the rule paths and the merge window. Rules are
loaded and compiled on first use, once; rules that fail to load or compile are kept in
``issues`` with their reason and never stop the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from kestrel.detect.sigma.compile import CompiledRule, compile_rules
from kestrel.detect.sigma.engine import SigmaEngine
from kestrel.detect.sigma.findings import findings_from_matches
from kestrel.detect.sigma.load import RuleIssue, load_rules
from kestrel.events import Batch
from kestrel.findings import Finding

RULES_ENV = "KESTREL_SIGMA_RULES"


def default_rule_paths() -> tuple[str, ...]:
    """``$KESTREL_SIGMA_RULES`` (paths separated like ``PATH``), or none."""
    value = os.environ.get(RULES_ENV, "")
    return tuple(p for p in value.split(os.pathsep) if p)


class SigmaDetector:
    """Runs every loaded Sigma rule over each batch; one finding per rule, entity and burst."""

    name: ClassVar[str] = "sigma"

    def __init__(self, rules: Sequence[str] = (), window_minutes: int = 60) -> None:
        self.rules = tuple(rules) or default_rule_paths()
        self.window_minutes = window_minutes
        self._engine: SigmaEngine | None = None
        self.issues: list[RuleIssue] = []

    def __repr__(self) -> str:
        return f"SigmaDetector(rules={list(self.rules)!r}, window_minutes={self.window_minutes})"

    @classmethod
    def from_compiled(
        cls, rules: Sequence[CompiledRule], window_minutes: int = 60
    ) -> SigmaDetector:
        """A detector over rules compiled elsewhere (tests, `kestrel rules test`)."""
        detector = cls((), window_minutes)
        detector._engine = SigmaEngine(rules)
        return detector

    @property
    def engine(self) -> SigmaEngine:
        """The compiled engine (loads and compiles the rules on first access)."""
        if self._engine is None:
            loaded = load_rules(self.rules) if self.rules else None
            compiled, issues = compile_rules(loaded.rules if loaded else [])
            self.issues = (loaded.issues if loaded else []) + issues
            self._engine = SigmaEngine(compiled)
        return self._engine

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for every rule that matches an event of ``batch``."""
        engine = self.engine
        matches = engine.match(batch)
        window = timedelta(minutes=self.window_minutes)
        return findings_from_matches(engine.rules, batch, matches, window)
