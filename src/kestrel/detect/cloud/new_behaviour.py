"""`NewBehaviourDetector`: a principal doing something it has never done, scored against its
own history.

Two kinds of "new":

* **sensitive** — the first time a principal triggers a row of the sensitive-operation table
  (`sensitive_operations.yml`: StopLogging, sharing a snapshot, CreateAccessKey for another
  user, opening port 22 to the world, ...). A row it has triggered before (in the learnt
  state) is not new and gives no signal: an automation role that rotates keys every night is
  not flagged every night. ``high`` rows count as two signals (severity high on their own).
* **novel operation** — a *mutating* operation (not Describe / List / Get / Head / Lookup)
  the principal never called, once the principal has at least ``min_history`` calls in its
  history. Read-only first uses are too common to be worth an analyst's time.

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
from kestrel.detect.cloud.sensitive import DEFAULT_TABLE, SensitiveRule, load_table, match
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

_COLUMNS = ("class", "entity_id", "entity_type", "user_name", "cloud_operation",
            "cloud_principal_type", "cloud_error_code")  # fmt: skip
_SEEN = {"entity_id": pl.String(), "key": pl.String()}
_COUNTS = {"entity_id": pl.String(), "n": pl.Int64()}
_READ_ONLY = r"^(Describe|List|Get|Head|Lookup|BatchGet|Search|Check|Preview|Test)"
_WIN = ["entity_id", "window_start"]


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
        where = (
            pl.col("class").is_in(["api_activity", "auth"])
            & pl.col("entity_id").is_not_null()
            & ~ptype.is_in(list(self._params["ignore_types"]))
        )
        events = frame(batch, _COLUMNS, where).with_columns(
            pl.col("time").dt.truncate(self.window).alias("window_start")
        )
        if events.is_empty():
            return []
        sensitive = self._sensitive(events)
        novel = self._novel(events).join(sensitive, on="event_id", how="anti")
        hits = pl.concat([sensitive, novel], how="diagonal")
        self._learn(events)
        return self._findings(hits, events)

    def _sensitive(self, events: pl.DataFrame) -> pl.DataFrame:
        """Rows matching a table rule the principal never triggered (bursts counted)."""
        found = match(events, self.rules).with_columns(("rule:" + pl.col("rule")).alias("key"))
        found = found.join(self._seen, on=["entity_id", "key"], how="anti")
        need = pl.col("rule").replace_strict(
            {r.id: r.min_count for r in self.rules}, default=1, return_dtype=pl.Int64
        )
        count = pl.len().over("entity_id", "rule", "window_start")
        return found.filter(count >= need).select("event_id", *_WIN, "key", "rule")

    def _novel(self, events: pl.DataFrame) -> pl.DataFrame:
        """First calls of a mutating operation by a principal with enough history."""
        writes = events.filter(~pl.col("cloud_operation").str.contains(_READ_ONLY))
        keyed = writes.with_columns(("op:" + pl.col("cloud_operation")).alias("key"))
        old = self._counts.filter(pl.col("n") >= self._params["min_history"])
        new = keyed.join(old.select("entity_id"), on="entity_id", how="semi").join(
            self._seen, on=["entity_id", "key"], how="anti"
        )
        return new.select("event_id", *_WIN, "key")

    def _learn(self, events: pl.DataFrame) -> None:
        ops = events.select("entity_id", ("op:" + pl.col("cloud_operation")).alias("key"))
        rules = match(events, self.rules).select(
            "entity_id", ("rule:" + pl.col("rule")).alias("key")
        )
        self._seen = pl.concat([self._seen, ops, rules]).unique(maintain_order=True)
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
        level = "sensitive" if rule.level == "high" else "novelty"
        detail = f"first time for this principal; {', '.join(rule.ops) or 'any operation'}"
        return Signal(f"new.sensitive:{name}", name, float(rule.min_count), detail, level)
