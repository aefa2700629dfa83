"""The literal prefilter of one logsource: which of its rules can match which of its events.

Each logsource keeps its own Aho-Corasick pattern set (the literals its rules require, see
`literals.py`), so an event is only scanned for the literals of the rules that may see it, and
the hits need no dispatch filtering afterwards. One ``extract_many`` pass over the lower-cased
``raw`` records of the logsource's events gives, per event, the literals found; a join with
the (literal, rule, clause bit) table turns them into (rule, row) candidate pairs, kept when
the bits of the clauses hit, OR-ed per pair in one ``group_by`` over a 64-bit (rule, row) key,
make the rule's full mask. Rules that require no literal are kept apart: they see every
event of their logsource.

Polars' ``extract_many`` builds its automaton on every call (~10 ms for the ~8,000 literals of
process creation), which a micro-batch with a hundred such events cannot afford: up to
`KEPT_AUTOMATON_ROWS` events, the scan is done by an ``ahocorasick-rs`` automaton built once
with the rule set, one call per record; above that, by ``extract_many``, faster per record.
Both find the same literals (overlapping, every occurrence), so the candidates are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from ahocorasick_rs import AhoCorasick

from kestrel.detect.sigma.compile import CompiledRule
from kestrel.detect.sigma.frame import ROW
from kestrel.detect.sigma.pipelines import Dispatch

RULE = "rule"
_LIT = "__lit"
_BIT = "__bit"
_FULL = "__full"
_KEY = "__key"
_PIECE = "__piece"
_CUT = '","'
# Scan the distinct pieces of the records rather than the records (`_piece_hits`).
PIECEWISE = True
# Up to this many events, the automaton built once per rule set scans them (from Python, one
# call per record); above it, Polars' ``extract_many``, which builds its automaton on every
# call (~10 ms for process creation's ~8,000 literals) but scans faster per record.
KEPT_AUTOMATON_ROWS = 1000
_SHIFT = 1 << 32  # (rule, row) as one UInt64: rule * 2**32 + row
PAIR_SCHEMA = {RULE: pl.UInt32, ROW: pl.UInt32}
_TABLE = {_LIT: pl.String, RULE: pl.UInt32, _BIT: pl.UInt8, _FULL: pl.UInt8}


@dataclass(slots=True)
class LogsourceRules:
    """The rules of one logsource and the prefilter tables built for them once."""

    dispatch: Dispatch
    rules: list[int]  # indices into the engine's rule list
    unfiltered: list[int]  # the rules among them that require no literal
    patterns: list[str]
    table: pl.DataFrame  # (literal, rule, clause bit, all bits) per literal a clause names
    needles: pl.Series  # ``patterns`` as a Polars list, made once: not per batch
    automaton: AhoCorasick | None = None  # ``patterns``, built once (small batches)
    piecewise: bool = False  # whether large batches may be scanned by pieces (`_piece_hits`)
    # per pattern index: the one-clause rules it makes candidates (one C-level set update per
    # literal found: "system" alone names hundreds of rules)
    singles_of: list[frozenset[int]] = field(default_factory=list)
    # per pattern index: the rules of several clauses whose first (most selective, see
    # `literals.clauses`) clause names it, each with its other clauses as pattern indexes:
    # a record found by one of these is a candidate if each other clause has a literal found
    # too. Anchoring on the rare clause spares walking the common ones (``.exe``) per record.
    anchored_of: list[list[tuple[int, tuple[frozenset[int], ...]]]] = field(default_factory=list)

    @classmethod
    def build(cls, dispatch: Dispatch, rules: Sequence[tuple[int, CompiledRule]]) -> LogsourceRules:
        """Tables for ``rules`` (engine index, rule), all of logsource ``dispatch``."""
        rows = [
            (lit, i, 1 << k, (1 << len(clauses)) - 1)
            for i, rule in rules
            for clauses in [rule.literals or ()]
            for k, clause in enumerate(clauses)
            for lit in sorted(clause)
        ]
        table = pl.DataFrame(rows, schema=_TABLE, orient="row")
        unfiltered = [i for i, r in rules if r.literals is None]
        patterns = sorted({row[0] for row in rows})
        needles = pl.Series([patterns], dtype=pl.List(pl.String))
        automaton = AhoCorasick(patterns) if patterns else None
        ids = [i for i, _ in rules]
        index = {p: k for k, p in enumerate(patterns)}
        singles: list[set[int]] = [set() for _ in patterns]
        anchored: list[list[tuple[int, tuple[frozenset[int], ...]]]] = [[] for _ in patterns]
        for i, rule in rules:
            clauses = rule.literals or ()
            if len(clauses) == 1:
                for lit in clauses[0]:
                    singles[index[lit]].add(i)
            elif clauses:
                others = tuple(frozenset(index[lit] for lit in c) for c in clauses[1:])
                for lit in clauses[0]:
                    anchored[index[lit]].append((i, others))
        return cls(
            dispatch, ids, unfiltered, patterns, table, needles, automaton,
            _piecewise_safe(patterns), [frozenset(s) for s in singles], anchored,
        )  # fmt: skip

    def pairs(self, events: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
        """(rule, row) for every rule whose clauses all have a literal in the record of row."""
        if not self.patterns or rows.is_empty():
            return pl.DataFrame(schema=PAIR_SCHEMA)
        lowered = pl.col("raw").str.to_lowercase()
        if len(rows) <= KEPT_AUTOMATON_ROWS and self.automaton is not None:
            texts = events.get_column("raw").gather(rows).to_frame().select(lowered)
            return self._kept_automaton(rows.to_list(), texts.to_series().to_list())
        needles = pl.lit(self.needles).first()
        records = events.select(ROW, "raw").gather(rows)
        if self.piecewise and PIECEWISE:
            hits = _piece_hits(records, lowered, needles)
        else:
            found = lowered.str.extract_many(needles, overlapping=True)
            hits = (
                records.select(ROW, found.list.unique().alias(_LIT)).explode(_LIT).drop_nulls(_LIT)
            )
        return _complete(hits.join(self.table, on=_LIT))

    def _kept_automaton(self, rows: list[int], texts: list[str | None]) -> pl.DataFrame:
        """(rule, row) pairs by the automaton built once, joined with the table in Python
        (what ``_complete`` does in Polars: one-clause rules hit by any literal, the others
        when each of their clauses has a literal found)."""
        assert self.automaton is not None
        find, singles_of, anchored_of = (
            self.automaton.find_matches_as_indexes,
            self.singles_of,
            self.anchored_of,
        )
        out_rule: list[int] = []
        out_row: list[int] = []
        for row, text in zip(rows, texts, strict=True):
            if text is None:
                continue
            found = {m[0] for m in find(text, overlapping=True)}
            rules: set[int] = set()
            for k in found:
                rules.update(singles_of[k])
                for rule, others in anchored_of[k]:
                    # a loop, not all() over a generator (a frame per check: ~5,700 checks
                    # per process-creation micro-batch, 17.7 -> 10.5 ms CPU for the scan)
                    for other in others:
                        if found.isdisjoint(other):
                            break
                    else:
                        rules.add(rule)
            out_rule.extend(rules)
            out_row.extend([row] * len(rules))
        return pl.DataFrame({RULE: out_rule, ROW: out_row}, schema=PAIR_SCHEMA)


def _piece_hits(records: pl.DataFrame, lowered: pl.Expr, needles: pl.Expr) -> pl.DataFrame:
    """(row, literal) for every literal found in the lower-cased records, each distinct
    piece of text scanned once.

    A record is cut after each ``","`` (the end of one JSON string member and the start of
    the next: ``"Image":"c:\\x.exe","User":...``); the pieces repeat from record to record
    (a Sysmon process-access micro-batch: 5.5 MB of records, 1.3 MB of distinct pieces, the
    image paths and call traces many times over), so the automaton scans each once and the
    hits go back to every row that holds the piece. No literal occurrence is cut (see
    `_piecewise_safe`), so the literals found per row are those of the whole record."""
    pieces = records.select(ROW, lowered.str.split(_CUT, inclusive=True).alias(_PIECE))
    distinct = pieces.explode(_PIECE).group_by(_PIECE).agg(pl.col(ROW))
    found = pl.col(_PIECE).str.extract_many(needles, overlapping=True).list.unique()
    return (
        distinct.select(ROW, found.alias(_LIT))
        .filter(pl.col(_LIT).list.len() > 0)
        .explode(_LIT)
        .explode(ROW)
        .select(ROW, _LIT)
    )


def _piecewise_safe(patterns: Sequence[str]) -> bool:
    """Whether no occurrence of any of ``patterns`` can cross a cut of `_piece_hits`.

    A cut falls between the ``"`` that ends ``","`` and the next character, so an occurrence
    crossing it holds that ``"`` with ``,`` just before it in the text. Literals are JSON
    text (`literals._variants`), where every ``"`` is escaped as ``\\"``: such a ``"``
    can only be a literal's first character or follow ``\\`` in it, never ``,``. A pattern
    with a ``"`` at its start or after anything but ``\\`` (none today) turns the cutting
    off for its logsource."""
    return not any(
        c == '"' and (k == 0 or p[k - 1] != "\\") for p in patterns for k, c in enumerate(p)
    )


def _complete(hits: pl.DataFrame) -> pl.DataFrame:
    """The (rule, row) of ``hits`` (row, rule, clause bit, all bits) that hit every clause.
    Most rules have one clause: their pairs only need to be unique (cheap); the few with more
    OR their clause bits per pair in a ``group_by``."""
    keyed = hits.select(_pair_key().alias(_KEY), _BIT, _FULL)
    single = keyed.filter(pl.col(_FULL) == 1).get_column(_KEY).unique()
    several = keyed.filter(pl.col(_FULL) > 1).group_by(_KEY)
    bits = several.agg(pl.col(_BIT).bitwise_or(), pl.col(_FULL).first())
    done = bits.filter(pl.col(_BIT) == pl.col(_FULL)).get_column(_KEY)
    keys = pl.concat([single, done])
    return pl.DataFrame(
        {RULE: (keys // _SHIFT).cast(pl.UInt32), ROW: (keys % _SHIFT).cast(pl.UInt32)}
    )


def _pair_key() -> pl.Expr:
    return pl.col(RULE).cast(pl.UInt64) * _SHIFT + pl.col(ROW).cast(pl.UInt64)
