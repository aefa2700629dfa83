"""The literal prefilter of one logsource: which of its rules can match which of its events.

Each logsource keeps its own Aho-Corasick pattern set (the literals its rules require, see
`literals.py`), so an event is only scanned for the literals of the rules that may see it, and
the hits need no dispatch filtering afterwards. One ``extract_many`` pass over the lower-cased
``raw`` records of the logsource's events gives, per event, the literals found; a join with
the (literal, rule, clause) table turns them into (rule, row) candidate pairs, kept when every
clause of the rule has a hit. Rules that require no literal are kept apart: they see every
event of their logsource.
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
_CLAUSE = "__clause"
_NEED = "__need"
PAIR_SCHEMA = {RULE: pl.UInt32, ROW: pl.UInt32}
_TABLE = {_LIT: pl.String, RULE: pl.UInt32, _CLAUSE: pl.UInt32}


@dataclass(slots=True)
class LogsourceRules:
    """The rules of one logsource and the prefilter tables built for them once."""

    dispatch: Dispatch
    rules: list[int]  # indices into the engine's rule list
    unfiltered: list[int]  # the rules among them that require no literal
    patterns: list[str]
    table: pl.DataFrame  # (literal, rule, clause) for every literal a rule's clauses name
    need: pl.DataFrame  # (rule, clauses) for the rules with more than one clause

    @classmethod
    def build(cls, dispatch: Dispatch, rules: Sequence[tuple[int, CompiledRule]]) -> LogsourceRules:
        """Tables for ``rules`` (engine index, rule), all of logsource ``dispatch``."""
        rows = [
            (lit, i, k)
            for i, rule in rules
            for k, clause in enumerate(rule.literals or ())
            for lit in sorted(clause)
        ]
        table = pl.DataFrame(rows, schema=_TABLE, orient="row")
        many = [(i, len(r.literals)) for i, r in rules if r.literals and len(r.literals) > 1]
        need = pl.DataFrame(many, schema={RULE: pl.UInt32, _NEED: pl.UInt32}, orient="row")
        unfiltered = [i for i, r in rules if r.literals is None]
        patterns = sorted({lit for lit, _, _ in rows})
        return cls(dispatch, [i for i, _ in rules], unfiltered, patterns, table, need)

    def pairs(self, events: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
        """(rule, row) for every rule whose clauses all have a literal in the record of row."""
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
        return self._complete(hits.join(self.table, on=_LIT).select(RULE, ROW, _CLAUSE).unique())

    def _complete(self, hits: pl.DataFrame) -> pl.DataFrame:
        """The (rule, row) of ``hits`` (rule, row, clause) that hit every clause of the rule."""
        if self.need.is_empty():
            return hits.select(RULE, ROW).unique()
        counts = hits.group_by(RULE, ROW).len(_NEED)
        enough = counts.join(self.need, on=RULE, how="left", suffix="_all")
        keep = pl.col(f"{_NEED}_all").is_null() | (pl.col(_NEED) >= pl.col(f"{_NEED}_all"))
        return enough.filter(keep).select(RULE, ROW)
