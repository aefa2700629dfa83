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

import polars as pl

from kestrel.detect.cloud.common import StatefulDetector, evidence_by, frame, make_finding
from kestrel.detect.cloud.sensitive import (
    COLUMNS,
    DEFAULT_TABLE,
    SensitiveRule,
    load_table,
    match,
    service_linked,
    succeeded,
)
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_type", "cloud_account", *COLUMNS)
_SEEN = {"entity_id": pl.String(), "key": pl.String()}
_COUNTS = {"entity_id": pl.String(), "n": pl.Int64()}
_READ_ONLY = r"^(Describe|List|Get|Head|Lookup|BatchGet|Search|Check|Preview|Test)"
_WIN = ["entity_id", "window_start"]
# signal kind of a table row's level, for severity (`kestrel.findings.severity`)
_KIND = {"high": "sensitive", "medium": "novelty", "low": "context"}


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
        self._seen = pl.DataFrame(schema=_SEEN)
        self._counts = pl.DataFrame(schema=_COUNTS)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the principals of ``batch`` that did something new."""
        ptype = pl.col("cloud_principal_type").fill_null("")
        where = pl.col("class").is_in(["api_activity", "auth"]) & ~ptype.is_in(
            list(self._params["ignore_types"])
        )
        events = frame(batch, _COLUMNS, where).with_columns(
            pl.col("time").dt.truncate(self.window).alias("window_start"),
            _entity().alias("entity_id"),
            pl.col("entity_type").fill_null("principal"),
        )
        if events.is_empty():
            return []
        matched = self._match(events)
        new = self._new_pairs(events, matched)
        sensitive = self._sensitive(matched, new)
        novel = self._novel(events, new).join(sensitive, on="event_id", how="anti")
        hits = pl.concat([sensitive, novel], how="diagonal")
        self._learn(events, new)
        return self._findings(hits, events)

    def _new_pairs(self, events: pl.DataFrame, matched: pl.DataFrame) -> pl.DataFrame:
        """The batch's (principal, key) pairs that are not in the seen set, in order of
        first occurrence: one anti-join against the seen set per batch, which the sensitive
        and novel checks and the learning all use."""
        ops = events.select("entity_id", ("op:" + pl.col("cloud_operation")).alias("key"))
        rules = matched.select("entity_id", ("rule:" + pl.col("rule")).alias("key"))
        pairs = pl.concat([ops, rules]).unique(maintain_order=True)
        return pairs.join(self._seen, on=["entity_id", "key"], how="anti", maintain_order="left")

    def _match(self, events: pl.DataFrame) -> pl.DataFrame:
        """`match` over only the rows and rules that can match (the same rows out, far less
        work): a rule matches only rows with one of its operations (and its services and
        principal types, where it names them), so rules whose operations the batch lacks,
        and rows that no remaining rule's operations cover, never reach the JSON paths."""
        present = set(events["cloud_operation"].drop_nulls().unique().to_list())
        rules = tuple(r for r in self.rules if not r.ops or present & set(r.ops))
        parts = []
        for group in _linked(rules):  # rules that name each other in unless_rules go together
            gate = pl.any_horizontal(pl.lit(False), *[r.gate() for r in group])
            rows = events.filter(gate.fill_null(False))
            if rows.height:
                parts.append(match(rows, group))
        return pl.concat(parts) if parts else match(events.clear(), ())

    def _sensitive(self, matched: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
        """Rows matching a table rule the principal never triggered (bursts counted)."""
        found = matched.with_columns(("rule:" + pl.col("rule")).alias("key"))
        found = found.join(new, on=["entity_id", "key"], how="semi")
        need = pl.col("rule").replace_strict(
            {r.id: r.min_count for r in self.rules}, default=1, return_dtype=pl.Int64
        )
        count = pl.len().over("entity_id", "rule", "window_start")
        return found.filter(count >= need).select("event_id", *_WIN, "key", "rule")

    def _novel(self, events: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
        """First calls of a mutating operation by a principal with enough history."""
        old = self._counts.filter(pl.col("n") >= self._params["min_history"])
        if old.is_empty():  # no principal has the history yet (a fresh detector): none is novel
            return events.clear().select("event_id", *_WIN, pl.lit(None, pl.String).alias("key"))
        # the read-only test on the batch's distinct operations, not on every call
        ops = events["cloud_operation"].drop_nulls().unique()
        mutating = ops.filter(~ops.str.contains(_READ_ONLY))
        writes = events.filter(
            pl.col("cloud_operation").is_in(mutating.implode()) & ~service_linked()
        )
        keyed = writes.with_columns(("op:" + pl.col("cloud_operation")).alias("key"))
        first = keyed.join(new, on=["entity_id", "key"], how="semi").join(
            old.select("entity_id"), on="entity_id", how="semi"
        )
        # succeeded() reads the response JSON: only on the few first calls left
        return first.filter(succeeded()).select("event_id", *_WIN, "key")

    def _learn(self, events: pl.DataFrame, new: pl.DataFrame) -> None:
        # only the batch's pairs not seen before are added (not a unique over the whole set)
        self._seen = pl.concat([self._seen, new])
        counts = events.group_by("entity_id").agg(pl.len().cast(pl.Int64).alias("n"))
        self._counts = (
            pl.concat([self._counts, counts]).group_by("entity_id").agg(pl.col("n").sum())
        )

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
