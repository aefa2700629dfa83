"""SigmaEngine: every compiled rule over a batch at once, without rules-times-events work.

Three steps, all columnar, done per logsource:

1. **Dispatch.** Each event's (reader, channel, EventID) picks the logsources it belongs to;
   a rule only ever sees events of its own logsource.
2. **Prefilter.** One Aho-Corasick pass (Polars ``extract_many``) over the lower-cased
   ``raw`` records of the logsource's events, with the literals of that logsource's rules
   only (`prefilter.py`), gives the (rule, event) candidate pairs. Rules that require no
   literal (numbers, negations only) keep every event of their logsource. Logsources that
   share events (``registry_add`` / ``delete`` / ``set`` / ``event``: Sysmon 12-14) are
   scanned together, once, for all their literals (`_families`).
3. **Evaluate.** The candidate rules of the logsource run together as one Polars plan over
   one evaluation frame of their candidate events (`evaluate.py`, `frame.py`); rules with
   only a few candidates run as Python predicates over those (`pyeval.py`) instead.

The result is a table of (rule, row) matches; `findings.py` turns it into findings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import polars as pl

from kestrel.detect.sigma.compile import LOWER_PREFIX, RAW_PREFIX, CompiledRule
from kestrel.detect.sigma.evaluate import evaluate, jobs
from kestrel.detect.sigma.frame import ROW
from kestrel.detect.sigma.pipelines import Dispatch
from kestrel.detect.sigma.prefilter import PAIR_SCHEMA, RULE, LogsourceRules
from kestrel.events import Batch

__all__ = ["MATCH_SCHEMA", "RULE", "SigmaEngine"]

# Logsources are independent: on a small batch each is a chain of small Polars plans whose
# cost is fixed per node and runs on one core (Polars releases the GIL), so running the
# logsources side by side is what spreads a micro-batch over the machine's cores.
_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="sigma")
_KEY = ("source", "__channel", "event_code")
_KEYS_KEPT = 4096  # (reader, channel, EventID) keys whose logsources are kept
MATCH_SCHEMA = PAIR_SCHEMA


class SigmaEngine:
    """Evaluates compiled rules over batches; build it once. Between batches it keeps only
    the logsources of each (reader, channel, EventID) key it has seen (``accepting``)."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = list(rules)
        self.dispatches = sorted({r.dispatch for r in self.rules}, key=lambda d: d.key)
        by_ds: dict[object, list[tuple[int, CompiledRule]]] = {d: [] for d in self.dispatches}
        for i, rule in enumerate(self.rules):
            by_ds[rule.dispatch].append((i, rule))
        self.groups = [LogsourceRules.build(d, by_ds[d]) for d in self.dispatches]
        self.columns = _read_columns(self.rules)
        # (reader, channel, EventID) → the logsources (indices) that accept it, as found
        self.accepting: dict[tuple[object, ...], tuple[int, ...]] = {}
        # logsources whose events overlap: index → (family number, the family's merged rules)
        self.family: dict[int, tuple[int, LogsourceRules]] = {}
        for n, members in enumerate(_families(self.dispatches)):
            if len(members) > 1:
                both = [pair for k in members for pair in by_ds[self.dispatches[k]]]
                merged = LogsourceRules.build(self.dispatches[members[0]], both)
                self.family.update(dict.fromkeys(members, (n, merged)))

    def __repr__(self) -> str:
        n, lits = len(self.rules), sum(len(g.patterns) for g in self.groups)
        return f"SigmaEngine(rules={n}, logsources={len(self.groups)}, literals={lits})"

    def match(self, batch: Batch) -> pl.DataFrame:
        """(rule index, row number) for every rule that matches an event of ``batch``."""
        if batch.num_rows == 0 or not self.rules:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        events = _events(batch, self.columns)
        tasks: dict[object, list[tuple[int, pl.Series]]] = {}
        for k, rows in self._parts(events):
            key = ("family", self.family[k][0]) if k in self.family else k
            tasks.setdefault(key, []).append((k, rows))
        found = _POOL.map(lambda work: self._match_logsources(events, work), tasks.values())
        return pl.concat([pl.DataFrame(schema=MATCH_SCHEMA), *found]).unique().sort(RULE, ROW)

    def _match_logsources(
        self, events: pl.DataFrame, work: list[tuple[int, pl.Series]]
    ) -> pl.DataFrame:
        """Prefilter and evaluation of logsources' rules over their rows; several logsources
        (one family) are scanned once, over all their rows, for all their literals."""
        if len(work) == 1:
            group, rows = self.groups[work[0][0]], work[0][1]
            return evaluate(
                events, self.rules, jobs(group.pairs(events, rows), group.unfiltered, rows)
            )
        merged = self.family[work[0][0]][1]
        every = pl.concat([rows for _, rows in work]).unique().sort()
        pairs = merged.pairs(events, every)
        found = [pl.DataFrame(schema=MATCH_SCHEMA)]
        for k, rows in work:
            group = self.groups[k]
            mine = pairs.filter(pl.col(RULE).is_in(group.rules)).join(
                rows.to_frame(ROW), on=ROW, how="semi"
            )
            found.append(evaluate(events, self.rules, jobs(mine, group.unfiltered, rows)))
        return pl.concat(found)

    def candidates(self, batch: Batch) -> pl.DataFrame:
        """The (rule, row) pairs left after dispatch and prefilter (for stats and tests)."""
        events = _events(batch, self.columns)
        found = [pl.DataFrame(schema=MATCH_SCHEMA)]
        for group, rows in self._rows_by_logsource(events):
            found.append(group.pairs(events, rows))
            every = pl.DataFrame({RULE: group.unfiltered}, schema={RULE: pl.UInt32})
            found.append(every.join(rows.to_frame(ROW), how="cross"))
        return pl.concat(found).unique()

    def _rows_by_logsource(self, events: pl.DataFrame) -> list[tuple[LogsourceRules, pl.Series]]:
        """Each logsource with the rows (sorted row numbers) of its events, if it has any."""
        return [(self.groups[k], rows) for k, rows in self._parts(events)]

    def _parts(self, events: pl.DataFrame) -> list[tuple[int, pl.Series]]:
        """Each logsource's index with the rows (sorted row numbers) of its events: one
        ``group_by`` of the row numbers by (reader, channel, EventID), then each logsource
        takes the groups it accepts, in Python (a batch has a few dozen such keys). Was a
        join, a sort and a ``partition_by``; any Polars call per logsource here costs ~1 ms
        or more on a loaded machine, before any logsource can start."""
        keyed = events.group_by(_KEY).agg(pl.col(ROW))
        rows_of: list[list[int]] = keyed.get_column(ROW).to_list()
        picked: dict[int, list[int]] = {}
        for n, key in enumerate(keyed.select(_KEY).iter_rows()):
            which = self.accepting.get(key)
            if which is None:
                which = tuple(i for i, d in enumerate(self.dispatches) if d.accepts(*key))
                if len(self.accepting) < _KEYS_KEPT:
                    self.accepting[key] = which
            for i in which:
                picked.setdefault(i, []).append(n)
        out = []
        for i in sorted(picked):
            groups = [rows_of[n] for n in picked[i]]
            # a group's rows keep their order (Polars' group_by does), several are merged
            rows = groups[0] if len(groups) == 1 else sorted(chain.from_iterable(groups))
            out.append((i, pl.Series(ROW, rows, dtype=pl.UInt32)))
        return out


def _families(dispatches: list[Dispatch]) -> list[list[int]]:
    """Indices of ``dispatches`` grouped where their events can overlap: the same readers and
    channels, EventIDs that intersect (logsources without EventIDs stay on their own)."""
    parent = list(range(len(dispatches)))

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for a, da in enumerate(dispatches):
        for b, db in enumerate(dispatches[:a]):
            if (da.sources, da.channels) == (db.sources, db.channels) and da.codes & db.codes:
                parent[root(a)] = root(b)
    out: dict[int, list[int]] = {}
    for k in range(len(dispatches)):
        out.setdefault(root(k), []).append(k)
    return list(out.values())


def _read_columns(rules: Sequence[CompiledRule]) -> frozenset[str]:
    """The batch columns that the engine reads for ``rules``: the dispatch keys, ``raw``
    and ``source`` (source fields, keywords, the prefilter), and every schema column a
    rule's expression or guard reads (lower-cased copies are made from them)."""
    out = {"source", "channel", "event_code", "raw"}
    for rule in rules:
        for name in rule.columns | rule.guard_columns:
            base = name.removeprefix(LOWER_PREFIX)
            if not base.startswith(RAW_PREFIX):
                out.add(base)
    return frozenset(out)


def _events(batch: Batch, columns: frozenset[str]) -> pl.DataFrame:
    """The batch as Polars, with only the ``columns`` the rules read (Windows rules read ~20
    of the ~90: converting the others cost ~6 of ~8 ms CPU per 10,000-event micro-batch)."""
    frame = pl.from_arrow(batch.select([c for c in batch.schema.names if c in columns]))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_row_index(ROW).with_columns(
        pl.col("channel").str.to_lowercase().alias("__channel")
    )
