"""`NewBehaviourDetector`: a principal doing something it has never done, scored against its
own history.

Two kinds of "new":

* **sensitive** — the first time a principal triggers a row of the sensitive-operation table
  (`sensitive_operations.yml`: StopLogging, sharing a snapshot, CreateAccessKey for another
  user, opening port 22 to the world, ...). A row it has triggered before (in the learnt
  state) is not new and gives no signal: an automation role that rotates keys every night is
  not flagged every night. ``high`` rows count as two signals (severity high on their own);
  ``low`` rows (ordinary but risky changes: a security group or route changed, an instance
  stopped, a snapshot taken, a database rebooted) are hunting leads: alone they make a low
  finding, and beside other signals they add none (signal kind ``context``).
* **novel operation** — a successful call (a failed one changed nothing) of a *mutating*
  operation (not Describe / List / Get / Head / Lookup) the principal never called, once
  the principal has at least ``min_history`` calls in its history. Read-only first uses are
  too common to be worth an analyst's time.

Calls by AWS service-linked roles (``:role/aws-service-role/``) are AWS acting on the
account, not a principal's behaviour: they are not scored, except by table rows that say
``service_roles: true`` (GPU instances launched by an auto-scaling group still cost money).
Records without a principal are scored as the account's unknown principal.

Signals of one principal in one window (``window_minutes``) make one finding, so
CreateUser + AttachUserPolicy(Administrator) + CreateAccessKey is one critical finding.
The state is the set of (principal, key) pairs seen with the first time, and call counts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.detect.cloud.arrays import (
    I64,
    B,
    CodeBook,
    Coded,
    global_codes,
    grow,
    micros_series,
    time_micros,
)
from kestrel.detect.cloud.common import (
    StatefulDetector,
    batch_columns,
    coded_column,
    distinct_sorted,
    evidence_by,
    frame,
    make_finding,
)
from kestrel.detect.cloud.sensitive import (
    COLUMNS,
    DEFAULT_TABLE,
    SHARED,
    SensitiveRule,
    load_table,
    match,
    service_linked,
    succeeded,
    with_shared,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_type", "cloud_account", *COLUMNS)
_SEEN = {"entity_id": pl.String(), "key": pl.String()}
_READ_ONLY = r"^(Describe|List|Get|Head|Lookup|BatchGet|Search|Check|Preview|Test)"
_WIN = ["entity_id", "window_start"]
# signal kind of a table row's level, for severity (`kestrel.findings.severity`)
_KIND = {"high": "sensitive", "medium": "novelty", "low": "context"}
# what `NewBehaviourDetector._gates` builds for a set of rules
_Gates = tuple[
    list[pl.Expr], list[pl.Expr | None], list[tuple[tuple[SensitiveRule, ...], list[int]]]
]


class NewBehaviourDetector(StatefulDetector):
    """First use of a sensitive operation, or of any mutating operation, by a principal."""

    name: ClassVar[str] = "new_behaviour"
    _state_names = ("seen", "counts")

    def __init__(
        self,
        window_minutes: int = 5,
        min_history: int = 200,
        table: str | None = None,
        ignore_types: tuple[str, ...] = ("AWSService",),
    ) -> None:
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self.window = timedelta(minutes=window_minutes)
        self.rules = load_table(Path(table) if table else DEFAULT_TABLE)
        self._by_id = {r.id: r for r in self.rules}
        self._min_count = {r.id: r.min_count for r in self.rules}
        self._gate_cache: dict[tuple[SensitiveRule, ...], _Gates] = {}
        self._seen = _Seen(CodeBook())
        self._counts = _Counts(self._seen.book)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the principals of ``batch`` that did something new."""
        ptype = pl.col("cloud_principal_type").fill_null("")
        where = pl.col("class").is_in(["api_activity", "auth"]) & ~ptype.is_in(
            list(self._params["ignore_types"])
        )
        cols = batch_columns(batch, ["class", "cloud_principal_type"])
        rows = np.flatnonzero(cols.select(where.fill_null(False)).to_series().to_numpy())
        if not len(rows):
            return []
        every = frame(batch, _COLUMNS)
        # no gather when every row is an API call (rows ascending: same length, same rows)
        events = (every if len(rows) == batch.num_rows else every[rows]).with_columns(
            self._window_start(batch, rows),
            _entity() if batch.column("entity_id").null_count else pl.col("entity_id"),
            pl.col("entity_type").fill_null("principal"),
        )
        codes = self._entity_codes(batch, rows, events)
        ops = self._seen.keys.prefixed(coded_column(batch, "cloud_operation"), rows, "op:")
        op_pairs = _pair(codes, ops)
        operation = coded_column(batch, "cloud_operation")
        used = np.flatnonzero(np.bincount(operation.codes[rows] + 1, minlength=1)[1:])
        present = set(operation.values.take(pa.array(used, pa.int64())).to_pylist())
        matched = self._match(events, present)
        rule_pairs = _pair(
            self._seen.book.encode(matched["entity_id"].to_arrow()),
            self._seen.keys.encode(("rule:" + matched["rule"]).to_arrow()),
        )
        old = self._counts.of(codes) >= self._params["min_history"]
        # every (principal, key) pair of the batch against the set as of its start, then
        # learnt: op pairs first, then rule pairs, as the set has always been ordered
        before = self._seen.see(np.concatenate([op_pairs, rule_pairs]))
        n = len(op_pairs)
        events = events.with_columns(pl.Series("_new", ~before[:n]), pl.Series("_old", old))
        matched = matched.with_columns(pl.Series("_new", ~before[n:]))
        sensitive = self._sensitive(matched)
        novel = self._novel(events).join(sensitive, on="event_id", how="anti")
        hits = pl.concat([sensitive, novel], how="diagonal")
        self._counts.add(codes)
        return self._findings(hits, events.drop("_new", "_old"))

    def _window_start(self, batch: Batch, rows: I64) -> pl.Expr | pl.Series:
        """Each row's window start: the time floored to a multiple of the window since the
        epoch, in NumPy on the int64 microseconds (what Polars' ``dt.truncate`` gives for a
        UTC time and a fixed window, ~5 ms a batch); Polars' truncate for any other time
        column."""
        time = batch.column("time")
        step = self.window // timedelta(microseconds=1)
        kind = time.type
        if (
            step <= 0
            or time.null_count
            or not pa.types.is_timestamp(kind)
            or (kind.unit, kind.tz) != ("us", "UTC")
        ):
            return pl.col("time").dt.truncate(self.window).alias("window_start")
        t = time_micros(batch)
        t = t if len(rows) == len(t) else t[rows]
        return micros_series(t // step * step, "window_start")

    def _entity_codes(self, batch: Batch, rows: I64, events: pl.DataFrame) -> I64:
        """Each event's principal code (records without one: their account's unknown
        principal, encoded from the filled-in ``entity_id``)."""
        codes = global_codes(coded_column(batch, "entity_id"), self._seen.book, rows)
        missing = np.flatnonzero(codes < 0)
        if len(missing):
            names = events["entity_id"].gather(missing).to_arrow()
            codes[missing] = self._seen.book.encode(names)
        return codes

    def _match(self, events: pl.DataFrame, present: set[str] | None = None) -> pl.DataFrame:
        """`match` over only the rows and rules that can match (the same rows out, far less
        work): a rule matches only rows with one of its operations (and its services and
        principal types, where it names them) whose text holds what the rule reads
        (`SensitiveRule.text_gate`), so rules whose operations the batch lacks, and rows
        that no remaining rule could match, never reach the JSON paths."""
        if present is None:  # the batch's operations
            present = set(events["cloud_operation"].drop_nulls().unique().to_list())
        rules = tuple(r for r in self.rules if not r.ops or present & set(r.ops))
        flags_of, texts, groups = self._gates(rules)
        # each rule's schema-column gate on every row (one pass), then its text tests on
        # the rows its gate let through only
        flags = events.select(flags_of)
        raw = events.get_column("raw")
        passed = []
        for flag, text in zip(flags.get_columns(), texts, strict=True):
            rows = np.flatnonzero(flag.to_numpy())
            if text is not None and len(rows):
                rows = rows[pl.DataFrame([raw.gather(rows)]).select(text).to_series().to_numpy()]
            passed.append(rows)
        none = np.zeros(0, np.int64)
        picks = [
            distinct_sorted(np.concatenate([none, *(passed[i] for i in at)])) for _, at in groups
        ]
        kept = distinct_sorted(np.concatenate([none, *picks]))
        if not len(kept):
            return events.clear().with_columns(pl.lit(None, pl.String).alias("rule"))
        # the JSON paths every rule reads, once per row that some group's gate lets through
        gated = with_shared(events[kept])
        parts = []
        for (group, _), picked in zip(groups, picks, strict=True):
            if len(picked):
                at = np.searchsorted(kept, picked)
                parts.append(match(gated[at], group).drop(SHARED))
        return pl.concat(parts)

    def _gates(self, rules: tuple[SensitiveRule, ...]) -> _Gates:
        """For ``rules``: each rule's gate (`SensitiveRule.gate`) and its text tests
        (`SensitiveRule.text_gate`, None when it has none), rule by rule in linked-group
        order; and each linked group (rules that name each other in ``unless_rules`` go
        together) with the positions of its rules. Built once per set of rules (a batch's
        operations pick the set; building the expressions cost more than running them)."""
        cached = self._gate_cache.get(rules)
        if cached is None:
            flags: list[pl.Expr] = []
            texts: list[pl.Expr | None] = []
            groups: list[tuple[tuple[SensitiveRule, ...], list[int]]] = []
            for group in _linked(rules):
                groups.append((group, list(range(len(flags), len(flags) + len(group)))))
                for r in group:
                    flags.append(r.gate().fill_null(False).alias(f"_r{len(flags)}"))
                    text = r.text_gate()
                    texts.append(None if text is None else text.fill_null(False))
            cached = flags, texts, groups
            self._gate_cache[rules] = cached
        return cached

    def _sensitive(self, matched: pl.DataFrame) -> pl.DataFrame:
        """Rows matching a table rule the principal never triggered (``_new``; bursts
        counted). One lazy query: a Polars call costs more than these few rows do."""
        if matched.is_empty():
            return matched.select("event_id", *_WIN, pl.lit(None, pl.String).alias("key"), "rule")
        need = pl.col("rule").replace_strict(self._min_count, default=1, return_dtype=pl.Int64)
        count = pl.len().over("entity_id", "rule", "window_start")
        return (
            matched.lazy()
            .filter(pl.col("_new"))
            .with_columns(("rule:" + pl.col("rule")).alias("key"))
            .filter(count >= need)
            .select("event_id", *_WIN, "key", "rule")
            .collect()
        )

    def _novel(self, events: pl.DataFrame) -> pl.DataFrame:
        """First calls (``_new``) of a mutating operation by a principal with enough history
        (``_old``)."""
        first = events.filter(pl.col("_new") & pl.col("_old"))
        if first.is_empty():
            return events.clear().select("event_id", *_WIN, pl.lit(None, pl.String).alias("key"))
        # the read-only test on the distinct operations, not on every call
        ops = first["cloud_operation"].drop_nulls().unique()
        mutating = ops.filter(~ops.str.contains(_READ_ONLY))
        writes = first.filter(
            pl.col("cloud_operation").is_in(mutating.implode()) & ~service_linked()
        )
        keyed = writes.with_columns(("op:" + pl.col("cloud_operation")).alias("key"))
        # succeeded() reads the response JSON: only on the few first calls left
        return keyed.filter(succeeded()).select("event_id", *_WIN, "key")

    def _findings(self, hits: pl.DataFrame, events: pl.DataFrame) -> list[Finding]:
        if hits.is_empty():
            return []
        keys = hits.group_by(_WIN).agg(pl.col("key").unique().sort())
        rows = events.join(hits.select("event_id").unique(), on="event_id", how="semi")
        ev = evidence_by(rows, _WIN).join(keys, on=_WIN)
        meta = events.group_by("entity_id").agg(pl.col("entity_type").first())
        out = []
        for row in ev.join(meta, on="entity_id").iter_rows(named=True):
            out.append(self._finding(row))
        return out

    def _finding(self, row: dict[str, Any]) -> Finding:
        signals = [self._signal(k) for k in row["key"]]
        rules = [self._by_id[k[5:]] for k in row["key"] if k.startswith("rule:")]
        techniques = [t for r in rules for t in r.techniques] or ["T1078.004"]
        title = "New behaviour: " + ", ".join(k.split(":", 1)[1] for k in row["key"])
        entity = Entity(row["entity_type"] or "principal", row["entity_id"])
        return make_finding(self.name, entity, row, signals, techniques, title, self.window)

    def _signal(self, key: str) -> Signal:
        kind, _, name = key.partition(":")
        if kind == "op":
            return Signal(f"new.operation:{name}", name, None, "first call by this principal",
                          "novelty")  # fmt: skip
        rule: SensitiveRule = self._by_id[name]
        level = _KIND[rule.level]
        detail = f"first time for this principal; {', '.join(rule.ops) or 'any operation'}"
        return Signal(f"new.sensitive:{name}", name, float(rule.min_count), detail, level)


_KEY_BITS = 24
"""Bits of a pair code for the key (``op:`` / ``rule:`` name): 16 million names."""
_KEY_MASK = (1 << _KEY_BITS) - 1


def _pair(entities: I64, keys: I64) -> I64:
    """(principal, key) pair codes; key code -1 (a call without an operation) gives the
    pair with key bits 0, which the seen set never holds."""
    if len(keys) and int(keys.max()) + 1 > _KEY_MASK:
        raise OverflowError(f"more than {_KEY_MASK - 1} distinct operation / rule keys")
    return (entities << _KEY_BITS) | (keys + 1)


class _Keys(CodeBook):
    """Codes of the ``op:`` / ``rule:`` keys."""

    def prefixed(self, coded: Coded, rows: I64, prefix: str) -> I64:
        """Each row's code of ``prefix`` + its value (-1 for a null), looking up only the
        values the rows use."""
        local = coded.codes[rows]
        used = np.flatnonzero(np.bincount(local[local >= 0], minlength=len(coded.values)))
        table = np.full(len(coded.values) + 1, -1, dtype=np.int64)
        if len(used):
            names = pc.binary_join_element_wise(
                prefix, coded.values.take(pa.array(used, pa.int64())).cast(pa.string()), ""
            )
            table[used] = self.encode(names)
        return table[local]


class _Seen:
    """The (principal, key) pairs seen: int64 pair codes in the order they were first seen
    (the checkpointed table keeps that order) and sorted (for the lookups). A pair whose
    key is null is never "seen" and is added again each batch, as the frame-based set did
    (its anti-join never matched a null)."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.keys = _Keys()
        self._order: list[I64] = []
        self._sorted = np.zeros(0, dtype=np.int64)

    def see(self, pairs: I64) -> B:
        """Which pairs were in the set before this call; then add those that were not,
        each once, in order of first occurrence. One sort of the pairs: the lookups and
        the insert run on sorted distinct values."""
        if not len(pairs):
            return np.zeros(0, dtype=np.bool_)
        order = np.argsort(pairs, kind="stable")
        ordered = pairs[order]
        start = np.r_[True, ordered[1:] != ordered[:-1]]
        distinct = ordered[start]
        null_key = (distinct & _KEY_MASK) == 0
        known = np.zeros(len(distinct), dtype=np.bool_)
        if len(self._sorted):
            pos = np.searchsorted(self._sorted, distinct)
            known = self._sorted[np.minimum(pos, len(self._sorted) - 1)] == distinct
        known &= ~null_key
        before = np.empty(len(pairs), dtype=np.bool_)
        before[order] = known[np.cumsum(start) - 1]
        new = ~known
        if new.any():
            first = order[start][new]
            self._order.append(distinct[new][np.argsort(first)])
            kept = distinct[new & ~null_key]
            self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, kept), kept)
        return before

    @property
    def state(self) -> pl.DataFrame:
        """``(entity_id, key)`` in the order first seen."""
        pairs = np.concatenate(self._order) if self._order else np.zeros(0, dtype=np.int64)
        self._order = [pairs] if len(pairs) else []
        keys = (pairs & _KEY_MASK) - 1
        names = self.keys.decode(np.maximum(keys, 0))
        if len(keys) and (keys < 0).any():
            names = names.set(pl.Series(keys < 0), None)
        return pl.DataFrame(
            [self.book.decode(pairs >> _KEY_BITS).alias("entity_id"), names.alias("key")]
        ).cast(_SEEN)  # type: ignore[arg-type]

    def load_arrow(self, table: pa.Table) -> None:
        """Restore a checkpointed set (its order kept)."""
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        self._order, self._sorted = [], np.zeros(0, dtype=np.int64)
        if not frame.height:
            return
        entities = self.book.encode(frame["entity_id"].cast(pl.String).to_arrow())
        key = frame["key"].cast(pl.String)
        codes = np.full(frame.height, -1, dtype=np.int64)
        present = np.flatnonzero(key.is_not_null().to_numpy())
        codes[present] = self.keys.encode(key.gather(present).to_arrow())
        pairs = _pair(entities, codes)
        self._order = [pairs]
        self._sorted = distinct_sorted(pairs[(pairs & _KEY_MASK) != 0])


class _Counts:
    """Calls per principal (for ``min_history``), by principal code."""

    def __init__(self, book: CodeBook) -> None:
        self.book = book
        self.n = np.zeros(0, dtype=np.int64)

    def of(self, codes: I64) -> I64:
        """Each code's count so far."""
        self.n = grow(self.n, len(self.book), 0)
        return self.n[codes]

    def add(self, codes: I64) -> None:
        """One more call per row."""
        self.n = grow(self.n, len(self.book), 0)
        self.n += np.bincount(codes, minlength=len(self.n))

    @property
    def state(self) -> pl.DataFrame:
        """``(entity_id, n)``, principals with calls, by principal."""
        self.n = grow(self.n, len(self.book), 0)
        codes = np.flatnonzero(self.n[: len(self.book)] > 0)
        out = pl.DataFrame([self.book.decode(codes).alias("entity_id"),
                            pl.Series("n", self.n[codes], dtype=pl.Int64)])  # fmt: skip
        return out.sort("entity_id")

    def load_arrow(self, table: pa.Table) -> None:
        """Restore checkpointed counts (a principal on several rows: their sum)."""
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        self.n = np.zeros(0, dtype=np.int64)
        if frame.height:
            codes = self.book.encode(frame["entity_id"].cast(pl.String).to_arrow())
            self.n = grow(self.n, len(self.book), 0)
            np.add.at(self.n, codes, frame["n"].cast(pl.Int64).to_numpy())


def _entity() -> pl.Expr:
    """The principal; a record that names none (a CloudTrail record without userIdentity)
    is kept under its account's unknown principal rather than dropped: a sensitive call
    with no known caller is no less sensitive."""
    unknown = pl.lit("aws:unknown-principal:") + pl.col("cloud_account").fill_null("unknown")
    return pl.col("entity_id").fill_null(unknown)


def _linked(rules: tuple[SensitiveRule, ...]) -> list[tuple[SensitiveRule, ...]]:
    """``rules`` in groups that `match` must see together: a rule and every rule its
    ``unless_rules`` name (transitively, both ways), in table order."""
    group = {r.id: {r.id} for r in rules}
    for r in rules:
        for other in r.unless_rules:
            if other in group and group[other] is not group[r.id]:
                merged = group[r.id] | group[other]
                for rid in merged:
                    group[rid] = merged
    out: list[tuple[SensitiveRule, ...]] = []
    done: set[str] = set()
    for r in rules:
        if r.id not in done:
            out.append(tuple(x for x in rules if x.id in group[r.id]))
            done |= group[r.id]
    return out
