"""The sensitive-operation table (`sensitive_operations.yml`): loaded into `SensitiveRule`s
and matched over a frame of API calls with one Polars expression per rule.

The table is data so that it can be reviewed line by line and extended without code; the
detector that uses it (`NewBehaviourDetector`) decides what is *new* for each principal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import yaml

from kestrel.errors import ConfigError

DEFAULT_TABLE = Path(__file__).with_name("sensitive_operations.yml")
_LEVELS = ("high", "medium")


@dataclass(frozen=True, slots=True)
class SensitiveRule:
    """One row of the table (see the YAML file's header for the fields)."""

    id: str
    ops: tuple[str, ...]
    level: str
    techniques: tuple[str, ...]
    when: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    other_user: bool = False
    min_count: int = 1

    def expr(self) -> pl.Expr:
        """True on the rows of a frame of API calls this rule matches."""
        raw = pl.col("raw")
        out = pl.col("cloud_operation").is_in(list(self.ops)) if self.ops else pl.lit(True)
        for pattern in self.when:
            out = out & raw.str.contains(pattern)
        for pattern in self.unless:
            out = out & ~raw.str.contains(pattern)
        if self.other_user:
            target = raw.str.json_path_match("$.requestParameters.userName")
            out = out & target.is_not_null() & (target != pl.col("user_name").fill_null(""))
        return out.fill_null(False)


@cache
def load_table(path: Path = DEFAULT_TABLE) -> tuple[SensitiveRule, ...]:
    """The rules of a table file. Raises `ConfigError` with the entry for a bad one."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return tuple(_rule(e, path) for e in entries)


def _rule(entry: dict[str, object], path: Path) -> SensitiveRule:
    try:
        rule = SensitiveRule(
            id=str(entry["id"]),
            ops=tuple(str(o) for o in entry.get("ops") or ()),  # type: ignore[attr-defined]
            level=str(entry.get("level", "medium")),
            techniques=tuple(str(t) for t in entry["techniques"]),  # type: ignore[attr-defined]
            when=tuple(str(w) for w in entry.get("when") or ()),  # type: ignore[attr-defined]
            unless=tuple(str(w) for w in entry.get("unless") or ()),  # type: ignore[attr-defined]
            other_user=bool(entry.get("other_user", False)),
            min_count=int(entry.get("min_count", 1)),  # type: ignore[call-overload]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: bad sensitive-operation entry {entry!r}: {exc}") from exc
    if rule.level not in _LEVELS:
        raise ConfigError(f"{path}: {rule.id}: level must be one of {_LEVELS}")
    return rule


def match(events: pl.DataFrame, rules: tuple[SensitiveRule, ...]) -> pl.DataFrame:
    """The rows of ``events`` that match a rule, one row per (event, rule), with ``rule``."""
    ops = sorted({o for r in rules for o in r.ops})
    anywhere = [r for r in rules if not r.ops]
    cand = pl.col("cloud_operation").is_in(ops)
    for r in anywhere:
        cand = cand | r.expr()
    subset = events.filter(cand.fill_null(False))
    if subset.is_empty():
        return subset.with_columns(pl.lit(None, pl.String).alias("rule"))
    hits = [pl.when(r.expr()).then(pl.lit(r.id)) for r in rules]
    found = subset.with_columns(pl.concat_list(hits).list.drop_nulls().alias("rule"))
    return found.explode("rule").filter(pl.col("rule").is_not_null())
