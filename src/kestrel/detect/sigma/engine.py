"""SigmaEngine: every compiled rule over a batch at once, without rules-times-events work.

Three steps, all columnar:

1. **Dispatch.** Each event's (reader, channel, EventID) picks the logsources it belongs to;
   a rule only ever sees events of its own logsource.
2. **Prefilter.** One Aho-Corasick pass (Polars ``extract_many``) over the ``raw`` records
   finds, for every event, which rules' required literals occur in it (`literals.py`).
   (event, rule) pairs without a literal hit are dropped before any rule is evaluated. Rules
   that require no literal (numbers, negations only) keep every event of their logsource.
3. **Evaluate.** Per logsource, one evaluation frame over the candidate events (`frame.py`);
   each rule's expression runs on its own candidate rows only.

The result is a table of (rule, row) matches; `findings.py` turns it into findings.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kestrel.detect.sigma.compile import CompiledRule
from kestrel.detect.sigma.frame import ROW, build_frame
from kestrel.detect.sigma.pipelines import Dispatch
from kestrel.events import Batch

RULE = "rule"
_DS = "__ds"
_LIT = "__lit"
_KEY = ("source", "__channel", "event_code")
MATCH_SCHEMA = {RULE: pl.UInt32, ROW: pl.UInt32}


class SigmaEngine:
    """Evaluates compiled rules over batches. Stateless between batches; build it once."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = list(rules)
        self.dispatches = sorted({r.dispatch for r in self.rules}, key=lambda d: d.key)
        index = {d: i for i, d in enumerate(self.dispatches)}
        self._rule_ds = [index[r.dispatch] for r in self.rules]
        self._literals = _literal_table(self.rules)
        self._patterns = self._literals.get_column(_LIT).unique().sort().to_list()
        unfiltered = [i for i, r in enumerate(self.rules) if r.literals is None]
        self._unfiltered = pl.DataFrame(
            {RULE: unfiltered, _DS: [self._rule_ds[i] for i in unfiltered]},
            schema={RULE: pl.UInt32, _DS: pl.UInt32},
        )

    def __repr__(self) -> str:
        return f"SigmaEngine(rules={len(self.rules)}, literals={len(self._patterns)})"

    def match(self, batch: Batch) -> pl.DataFrame:
        """(rule index, row number) for every rule that matches an event of ``batch``."""
        if batch.num_rows == 0 or not self.rules:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        events = _events(batch)
        groups = self._row_groups(events)
        pairs = pl.concat([self._prefilter(events, groups), self._all_rows(groups)])
        return self._evaluate(events, pairs.unique())

    def candidates(self, batch: Batch) -> pl.DataFrame:
        """The (rule, row) pairs left after dispatch and prefilter (for stats and tests)."""
        events = _events(batch)
        groups = self._row_groups(events)
        return pl.concat([self._prefilter(events, groups), self._all_rows(groups)]).unique()

    def _row_groups(self, events: pl.DataFrame) -> pl.DataFrame:
        """(row, logsource index) for every logsource each event belongs to."""
        keys = events.select(_KEY).unique()
        table = [
            (*key, i)
            for key in keys.iter_rows()
            for i, d in enumerate(self.dispatches)
            if d.accepts(*key)
        ]
        schema: dict[str, pl.DataType] = dict(zip(_KEY, keys.dtypes, strict=True))
        schema[_DS] = pl.UInt32()
        accepted = pl.DataFrame(table, schema=schema, orient="row")
        return events.select(ROW, *_KEY).join(accepted, on=list(_KEY), nulls_equal=True)

    def _prefilter(self, events: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
        """(rule, row) pairs whose rule has a literal in the row's record."""
        if not self._patterns or groups.is_empty():
            return pl.DataFrame(schema=MATCH_SCHEMA)
        rows = groups.get_column(ROW).unique()
        hits = (
            events.select(ROW, "raw")
            .gather(rows)
            .select(ROW, _hits(self._patterns).alias(_LIT))
            .explode(_LIT)
            .drop_nulls(_LIT)
            .with_columns(pl.col(_LIT).str.to_lowercase())
            .unique()
        )
        pairs = hits.join(self._literals, on=_LIT).select(ROW, RULE, _DS).unique()
        return pairs.join(groups.select(ROW, _DS), on=[ROW, _DS], how="semi").select(RULE, ROW)

    def _all_rows(self, groups: pl.DataFrame) -> pl.DataFrame:
        """Rules without literals: every row of their logsource is a candidate."""
        joined = self._unfiltered.join(groups.select(ROW, _DS), on=_DS)
        return joined.select(RULE, ROW)

    def _evaluate(self, events: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
        out = [pl.DataFrame(schema=MATCH_SCHEMA)]
        ds = pl.Series(_DS, self._rule_ds, dtype=pl.UInt32)
        pairs = pairs.with_columns(ds.gather(pairs.get_column(RULE))).sort(_DS, RULE, ROW)
        for (_,), group in pairs.group_by(_DS, maintain_order=True):
            out.append(self._evaluate_group(events, group))
        return pl.concat(out).sort(RULE, ROW)

    def _evaluate_group(self, events: pl.DataFrame, group: pl.DataFrame) -> pl.DataFrame:
        """One logsource: one frame over its candidate rows, each rule on its own rows."""
        rule_ids = group.get_column(RULE).unique(maintain_order=True).to_list()
        names = set().union(*(self.rules[r].columns for r in rule_ids))
        rows = group.get_column(ROW).unique().sort()
        frame = build_frame(events, rows, names)
        found = []
        for (rule,), sub in group.group_by(RULE, maintain_order=True):
            pos = rows.search_sorted(sub.get_column(ROW))
            hit = frame.gather(pos).filter(self.rules[int(rule)].expr)
            found.append(hit.select(pl.lit(rule, pl.UInt32).alias(RULE), pl.col(ROW)))
        return pl.concat(found) if found else pl.DataFrame(schema=MATCH_SCHEMA)


def _events(batch: Batch) -> pl.DataFrame:
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_row_index(ROW).with_columns(
        pl.col("channel").str.to_lowercase().alias("__channel")
    )


def _hits(patterns: list[str]) -> pl.Expr:
    return pl.col("raw").str.extract_many(patterns, ascii_case_insensitive=True, overlapping=True)


def _literal_table(rules: Sequence[CompiledRule]) -> pl.DataFrame:
    """(literal, rule, logsource index) for every literal a rule requires."""
    lits, ids = [], []
    for i, rule in enumerate(rules):
        for lit in sorted(rule.literals or ()):
            lits.append(lit)
            ids.append(i)
    dispatches = sorted({r.dispatch for r in rules}, key=lambda d: d.key)
    index: dict[Dispatch, int] = {d: i for i, d in enumerate(dispatches)}
    return pl.DataFrame(
        {_LIT: lits, RULE: ids, _DS: [index[rules[i].dispatch] for i in ids]},
        schema={_LIT: pl.String, RULE: pl.UInt32, _DS: pl.UInt32},
    )
