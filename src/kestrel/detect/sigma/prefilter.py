"""The literal prefilter of one logsource: which of its rules can match which of its events.

Each logsource keeps its own Aho-Corasick pattern set (the literals its rules require, see
`literals.py`), so an event is only scanned for the literals of the rules that may see it, and
the hits need no dispatch filtering afterwards. One ``extract_many`` pass over the lower-cased
``raw`` records of the logsource's events gives, per event, the literals found; a join with
the (literal, rule) table turns them into (rule, row) candidate pairs. Rules that require no
literal are kept apart: they see every event of their logsource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from kestrel.detect.sigma.compile import CompiledRule
from kestrel.detect.sigma.frame import ROW
from kestrel.detect.sigma.pipelines import Dispatch

RULE = "rule"
_LIT = "__lit"
PAIR_SCHEMA = {RULE: pl.UInt32, ROW: pl.UInt32}


@dataclass(slots=True)
class LogsourceRules:
    """The rules of one logsource and the prefilter tables built for them once."""

    dispatch: Dispatch
    rules: list[int]  # indices into the engine's rule list
    unfiltered: list[int]  # the rules among them that require no literal
    patterns: list[str]
    table: pl.DataFrame  # (literal, rule) for every literal a rule requires

    @classmethod
    def build(cls, dispatch: Dispatch, rules: Sequence[tuple[int, CompiledRule]]) -> LogsourceRules:
        """Tables for ``rules`` (engine index, rule), all of logsource ``dispatch``."""
        lits, ids = [], []
        for i, rule in rules:
            for lit in sorted(rule.literals or ()):
                lits.append(lit)
                ids.append(i)
        table = pl.DataFrame({_LIT: lits, RULE: ids}, schema={_LIT: pl.String, RULE: pl.UInt32})
        unfiltered = [i for i, r in rules if r.literals is None]
        patterns = sorted(set(lits))
        return cls(dispatch, [i for i, _ in rules], unfiltered, patterns, table)

    def pairs(self, events: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
        """(rule, row) for every literal hit of a rule in the records of ``rows``."""
        if not self.patterns or rows.is_empty():
            return pl.DataFrame(schema=PAIR_SCHEMA)
        found = pl.col("raw").str.to_lowercase().str.extract_many(self.patterns, overlapping=True)
        hits = (
            events.select(ROW, "raw")
            .gather(rows)
            .select(ROW, found.list.unique().alias(_LIT))
            .explode(_LIT)
            .drop_nulls(_LIT)
        )
        return hits.join(self.table, on=_LIT).select(RULE, ROW).unique()
