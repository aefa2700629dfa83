"""`SigmaDetector`: the Sigma engine behind the `Detector` contract (batches in, findings out).

Configured by its constructor (river style): the rule paths and the merge window. Rules are
loaded and compiled on first use, once; rules that fail to load or compile are kept in
``issues`` with their reason and never stop the others. Correlation rules run over the base
rules' matches of each batch (`correlate.py`) and give findings of their own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

import polars as pl

from kestrel.detect.sigma.compile import CompiledRule, compile_rules
from kestrel.detect.sigma.correlate import Correlation, compile_correlations, correlate
from kestrel.detect.sigma.engine import SigmaEngine
from kestrel.detect.sigma.findings import findings_from_matches
from kestrel.detect.sigma.frame import ROW
from kestrel.detect.sigma.load import RuleIssue, load_rules
from kestrel.detect.sigma.pipelines import Dispatch
from kestrel.events import Batch
from kestrel.findings import Finding

RULES_ENV = "KESTREL_SIGMA_RULES"
LEVELS = ("informational", "low", "medium", "high", "critical")


def default_rule_paths() -> tuple[str, ...]:
    """``$KESTREL_SIGMA_RULES`` (paths separated like ``PATH``), or none."""
    value = os.environ.get(RULES_ENV, "")
    return tuple(p for p in value.split(os.pathsep) if p)


class SigmaDetector:
    """Runs every loaded Sigma rule over each batch; one finding per rule, entity and burst."""

    name: ClassVar[str] = "sigma"

    def __init__(
        self, rules: Sequence[str] = (), window_minutes: int = 60, min_level: str | None = None
    ) -> None:
        if min_level is not None:
            check_level(min_level)
        self.rules = tuple(rules) or default_rule_paths()
        self.window_minutes = window_minutes
        self.min_level = min_level
        self._engine: SigmaEngine | None = None
        self.correlations: list[Correlation] = []
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
            if self.min_level is not None:  # a site's noise floor: low rules fire on routine calls
                compiled = at_or_above(compiled, self.min_level)
            self.correlations, more = compile_correlations(loaded.correlations if loaded else [])
            self.issues = (loaded.issues if loaded else []) + issues + more
            self._engine = SigmaEngine(compiled)
        return self._engine

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for every rule (and correlation) that matches events of ``batch``."""
        engine = self.engine
        matches = engine.match(batch)
        window = timedelta(minutes=self.window_minutes)
        if self.correlations and not matches.is_empty():
            matches = pl.concat([matches, self._correlated(batch, matches)])
        rules = [*engine.rules, *(_as_rule(c) for c in self.correlations)]
        return findings_from_matches(rules, batch, matches, window)

    def _correlated(self, batch: Batch, matches: pl.DataFrame) -> pl.DataFrame:
        """(len(rules) + correlation index, row) for every correlation that holds."""
        events = pl.from_arrow(batch)
        assert isinstance(events, pl.DataFrame)
        events = events.with_row_index(ROW)
        ids, n = [r.meta.id for r in self.engine.rules], len(self.engine.rules)
        found = [correlate(c, n + i, events, matches, ids) for i, c in enumerate(self.correlations)]
        return pl.concat(found)


def check_level(level: str) -> None:
    """A `ValueError` naming the known levels when ``level`` is not one of `LEVELS`."""
    if level not in LEVELS:
        raise ValueError(f"unknown Sigma level {level!r}; one of {', '.join(LEVELS)}")


def at_or_above(rules: Sequence[CompiledRule], min_level: str) -> list[CompiledRule]:
    """The rules of level ``min_level`` or above (see `_rank`)."""
    check_level(min_level)
    floor = LEVELS.index(min_level)
    return [r for r in rules if _rank(r.meta.level) >= floor]


def _rank(level: str) -> int:
    """Position of a rule's level in `LEVELS`; a rule with no or an unknown level ranks as
    medium (Sigma's specification leaves level optional)."""
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("medium")


def _as_rule(corr: Correlation) -> CompiledRule:
    """A correlation in the shape findings read (meta, fields); never dispatched."""
    never = Dispatch(corr.meta.logsource, never=True)
    fields = (*corr.group_by, *([corr.field] if corr.field else []))
    return CompiledRule(corr.meta, never, pl.lit(False), None, set(), fields)
