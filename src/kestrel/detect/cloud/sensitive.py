"""The sensitive-operation table (`sensitive_operations.yml`): loaded into `SensitiveRule`s
and matched over a frame of API calls with one Polars expression per rule.

The table is data so that it can be reviewed line by line and extended without code; the
detector that uses it (`NewBehaviourDetector`) decides what is *new* for each principal.

A rule names operations and the request conditions that make them dangerous (a security
group opened to ``0.0.0.0/0``, not any ingress rule; a snapshot shared with an account, not
any attribute change). By default only *successful* calls count: a failed ``StopLogging``
changed nothing, and failed attempts are the business of `CloudAPIAbuseDetector`'s error
rate. Rules whose very attempt is the signal (reading instance passwords, leaving the
organization) say ``attempts: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from kestrel.errors import ConfigError

DEFAULT_TABLE = Path(__file__).with_name("sensitive_operations.yml")
# high: two signals (high on its own); medium: one; low: an ordinary but risky change, a
# hunting lead worth a look the first time a principal makes it, that raises no severity
_LEVELS = ("high", "medium", "low")
# columns `match` reads (besides ``raw``); callers must provide them
COLUMNS = ("entity_id", "cloud_operation", "cloud_service", "cloud_principal_type",
           "cloud_error_code", "outcome", "user_name", "cloud_user_agent")  # fmt: skip
# service-linked roles can only be assumed by the AWS service they belong to: their calls are
# AWS acting on the account (Trusted Advisor, SSO, Backup), not a principal's behaviour
SERVICE_LINKED = ":role/aws-service-role/"


@dataclass(frozen=True, slots=True)
class SensitiveRule:
    """One row of the table (see the YAML file's header for the fields)."""

    id: str
    ops: tuple[str, ...]
    level: str
    techniques: tuple[str, ...]
    source: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    params_unless: tuple[tuple[str, str], ...] = ()
    principal: tuple[str, ...] = ()
    attempts: bool = False
    when: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    unless_rules: tuple[str, ...] = ()
    other_user: bool = False
    min_count: int = 1
    service_roles: bool = False
    user_agent: str = ""

    def gate(self) -> pl.Expr:
        """What a row must have for this rule to match it: the conditions on schema columns,
        before any JSON path (a superset of the rule's matches; `expr` starts from it)."""
        out = pl.col("cloud_operation").is_in(list(self.ops)) if self.ops else pl.lit(True)
        if self.source:
            out = out & pl.col("cloud_service").is_in(list(self.source))
        if self.principal:
            out = out & pl.col("cloud_principal_type").is_in(list(self.principal))
        if self.user_agent:
            out = out & user_agent_matches(self.user_agent)
        return out

    def keys_present(self) -> pl.Expr:
        """True where ``raw`` holds the name of every request field the rule's ``params``
        read (or a \\u escape that could spell one): elsewhere those JSON paths are null
        and the rule cannot match, so `match` skips those rows before any JSON path."""
        raw = pl.col("raw").fill_null("")
        out: pl.Expr = pl.lit(True)
        for path, _ in self.params:
            out = out & raw.str.contains(f'"{path.rsplit(".", 1)[-1]}"', literal=True)
        return out | raw.str.contains("\\u", literal=True)

    def text_gate(self) -> pl.Expr | None:
        """What ``raw`` must hold for this rule to match a row, tested on the text (no JSON
        path): the request fields' names (`keys_present`), each ``params`` value's pattern
        (`value_gate`) and every ``when`` pattern, each of which `expr` requires; None when
        the rule has none. Rows that pass `gate` but not this cannot match, so
        `NewBehaviourDetector` drops them before the shared JSON tests (`with_shared`)."""
        raw = pl.col("raw").fill_null("")
        tests = [raw.str.contains(pattern) for pattern in self.when]
        if self.params:
            tests.append(self.keys_present())
        tests.extend(
            g for path, pattern in self.params if (g := value_gate(path, pattern)) is not None
        )
        return pl.all_horizontal(tests) if tests else None

    def expr(self) -> pl.Expr:
        """True on the rows of a frame of API calls this rule matches (without
        ``unless_rules``, which `match` applies). The frame must have the `SHARED`
        columns (`with_shared`)."""
        raw = pl.col("raw")
        out = self.gate()
        # the conditions every rule reads are columns `match` adds once (`SHARED`)
        if not self.attempts:
            out = out & pl.col("_succeeded")
        if not self.service_roles:
            out = out & ~pl.col("_linked")
        # records AWS itself writes (scheduled key rotation, ...) are no principal's doing
        out = out & ~pl.col("_aws_event")
        for path, pattern in self.params:
            out = out & _field(path).str.contains(pattern).fill_null(False)
        for path, pattern in self.params_unless:
            out = out & ~_field(path).str.contains(pattern).fill_null(False)
        for pattern in self.when:
            out = out & raw.str.contains(pattern)
        for pattern in self.unless:
            out = out & ~raw.str.contains(pattern)
        if self.other_user:
            target = _field("requestParameters.userName")
            out = out & target.is_not_null() & (target != pl.col("user_name").fill_null(""))
        return out.fill_null(False)


def value_gate(path: str, pattern: str) -> pl.Expr | None:
    """True on every record whose value at ``path`` can match ``pattern`` (and on some
    others), tested on the raw text with no JSON path; None when ``pattern`` is not one it
    can rewrite.

    Where the record's text holds no backslash (no escape), a string value stands in it
    verbatim between quotes after ``"name":`` (``name`` the path's last key), and a
    true / false / null value verbatim after ``"name":``; so a match of ``pattern`` in the
    value is a match in the text of ``pattern`` with its start anchors (``^``, ``\\A``)
    turned into that prefix, its end anchors (``$``, ``\\z``) into what may follow a value,
    and its word-boundary assertions dropped (each rewrite only widens what matches).
    Numbers (which the JSON path prints as it parses them: ``1e5`` is ``100000.0``),
    objects and arrays (printed anew) are not verbatim: a record where any ``"name":`` is
    followed by one passes whatever it holds, and so does one with a backslash."""
    name = _regex_escape(path.rsplit(".", 1)[-1])
    regex = _value_regex(pattern, name)
    if regex is None:
        return None
    raw = pl.col("raw").fill_null("")
    return (
        raw.str.contains("\\", literal=True)
        | raw.str.contains(f'"{name}"\\s*:\\s*[\\[{{0-9-]')
        | raw.str.contains(regex)
    )


def _regex_escape(text: str) -> str:
    """``text`` as a literal in the Rust regex syntax Polars uses."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$#&-~" else c for c in text)


def _value_regex(pattern: str, name: str) -> str | None:
    """``pattern`` rewritten to match the text of a record where it matches the value after
    ``"name":`` (`value_gate`), or None: a pattern with inline flags it does not follow
    (``x``: spaces and comments; ``m`` / ``s`` / ``R``: lines) or a class it cannot scan."""
    start = f'"{name}"\\s*:\\s*"?'
    end = '"?[\\s,}\\]]'
    out: list[str] = []
    i, depth = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if depth == 0 and nxt in "AzbB":
                out.append(f"(?:{start})" if nxt == "A" else f"(?:{end})" if nxt == "z" else "")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if depth == 0 and c == "(" and pattern.startswith("(?", i):
            flags = pattern[i + 2 :].split(")", 1)[0].split(":", 1)[0]
            if any(f in flags for f in "xmsR"):
                return None
        if c == "[":
            depth += 1
            out.append(c)
            i += 1
            # a ']' first in a class (after any '^') is a literal
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("]")
                i += 1
            continue
        if c == "]" and depth:
            depth -= 1
        elif depth == 0 and c == "^":
            c = f"(?:{start})"
        elif depth == 0 and c == "$":
            c = f"(?:{end})"
        out.append(c)
        i += 1
    return None if depth else "".join(out)


SHARED = ("_succeeded", "_linked", "_aws_event")
"""Columns `with_shared` adds: what every rule tests, each JSON path read once per row
instead of once per rule."""


def with_shared(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with the `SHARED` columns (unless it has them): the call succeeded, the
    caller is a service-linked role, the record is an AWS service event."""
    if all(c in events.columns for c in SHARED):
        return events
    # The two JSON tests can only be true on a record whose text holds the word they look
    # for (``Failure``, ``AwsServiceEvent``), or a \u escape that could spell it: the JSON
    # paths run on those few rows only, not on every call.
    raw = pl.col("raw").fill_null("")
    escaped = raw.str.contains("\\u", literal=True)
    maybe = events.select(
        (raw.str.contains("Failure", literal=True) | escaped).alias("fail"),
        (raw.str.contains("AwsServiceEvent", literal=True) | escaped).alias("aws"),
    )
    failed = _only_where(events, maybe["fail"], _failed_signin())
    aws = _only_where(events, maybe["aws"], _field("eventType").fill_null("") == "AwsServiceEvent")
    return events.with_columns(
        (_call_ok() & ~failed).alias("_succeeded"),
        service_linked().alias("_linked"),
        aws.alias("_aws_event"),
    )


def _only_where(events: pl.DataFrame, where: pl.Series, test: pl.Expr) -> pl.Series:
    """``test`` (null as false) on the rows ``where`` is true, false on the others."""
    rows = np.flatnonzero(where.to_numpy())
    out = np.zeros(events.height, dtype=np.bool_)
    if len(rows):
        out[rows] = events[rows].select(test.fill_null(False)).to_series().to_numpy()
    return pl.Series(out)


def succeeded() -> pl.Expr:
    """True on calls that did what they asked: no error code, not a failed login, and not a
    sign-in event whose response says ``Failure`` (``{"PasswordUpdated":"Failure"}``)."""
    return _call_ok() & ~_failed_signin().fill_null(False)


def _call_ok() -> pl.Expr:
    """No error code and not a failed login (the schema columns of `succeeded`)."""
    return (pl.col("cloud_error_code").fill_null("") == "") & (
        pl.col("outcome").fill_null("") != "failure"
    )


def _failed_signin() -> pl.Expr:
    """A sign-in event whose response says ``Failure`` (``{"PasswordUpdated":"Failure"}``)."""
    return _field("responseElements").str.contains(r'^\{"\w+":"Failure"\}$')


def user_agent_matches(pattern: str) -> pl.Expr:
    """True where the record's user agent matches ``pattern`` (a column, not the raw JSON:
    cheap enough for rows that name no operation)."""
    return pl.col("cloud_user_agent").fill_null("").str.contains(pattern)


def service_linked() -> pl.Expr:
    """True on calls by an AWS service-linked role."""
    return pl.col("entity_id").fill_null("").str.contains(SERVICE_LINKED, literal=True)


def _field(path: str) -> pl.Expr:
    """The value at a dotted path of the record (objects as JSON text), or null."""
    return pl.col("raw").str.json_path_match("$." + path)


@cache
def load_table(path: Path = DEFAULT_TABLE) -> tuple[SensitiveRule, ...]:
    """The rules of a table file. Raises `ConfigError` with the entry for a bad one."""
    # libyaml's safe loader when PyYAML has it: the same objects, ~10x less CPU (0.11 ->
    # 0.012 s for the default table, once per process)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    entries = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or []
    rules = tuple(_rule(e, path) for e in entries)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: duplicate rule ids")
    for r in rules:
        if missing := set(r.unless_rules) - set(ids):
            raise ConfigError(f"{path}: {r.id}: unless_rules names unknown {sorted(missing)}")
    return rules


def _strs(entry: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key) or ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _pairs(entry: Mapping[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be a mapping of path: regex")
    return tuple((str(k), str(v)) for k, v in value.items())


_FIELDS = {"id", "ops", "level", "techniques", "source", "params", "params_unless",
           "principal", "attempts", "when", "unless", "unless_rules", "other_user",
           "min_count", "service_roles", "user_agent"}  # fmt: skip


def _rule(entry: dict[str, Any], path: Path) -> SensitiveRule:
    try:
        if extra := set(entry) - _FIELDS:
            raise KeyError(f"unknown fields {sorted(extra)}")
        rule = SensitiveRule(
            id=str(entry["id"]),
            ops=_strs(entry, "ops"),
            level=str(entry.get("level", "medium")),
            techniques=_strs(entry, "techniques"),
            source=_strs(entry, "source"),
            params=_pairs(entry, "params"),
            params_unless=_pairs(entry, "params_unless"),
            principal=_strs(entry, "principal"),
            attempts=bool(entry.get("attempts", False)),
            when=_strs(entry, "when"),
            unless=_strs(entry, "unless"),
            unless_rules=_strs(entry, "unless_rules"),
            other_user=bool(entry.get("other_user", False)),
            min_count=int(entry.get("min_count", 1)),
            service_roles=bool(entry.get("service_roles", False)),
            user_agent=str(entry.get("user_agent") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: bad sensitive-operation entry {entry!r}: {exc}") from exc
    if rule.level not in _LEVELS:
        raise ConfigError(f"{path}: {rule.id}: level must be one of {_LEVELS}")
    if not rule.techniques:
        raise ConfigError(f"{path}: {rule.id}: no techniques")
    return rule


def match(events: pl.DataFrame, rules: tuple[SensitiveRule, ...]) -> pl.DataFrame:
    """The rows of ``events`` that match a rule, one row per (event, rule), with ``rule``.

    A rule with ``unless_rules`` stays silent on an event one of those rules matched (the
    more specific row speaks for it: an admin policy attached is not also "a policy
    attached")."""
    ops = sorted({o for r in rules for o in r.ops})
    anywhere = [r for r in rules if not r.ops]
    added = [c for c in SHARED if c not in events.columns]
    if len(rules) == 1 and rules[0].ops and rules[0].params:
        # one rule reading request fields: the rows that hold their names, then the rule
        (rule,) = rules
        query = with_shared(events.filter(rule.keys_present())).lazy().filter(rule.expr())
        return query.drop(added).with_columns(pl.lit(rule.id, pl.String).alias("rule")).collect()
    events = with_shared(events)
    cand = pl.col("cloud_operation").is_in(ops)
    for r in anywhere:
        cand = cand | r.expr()
    subset = events.filter(cand.fill_null(False))
    if subset.is_empty():
        return subset.drop(added).with_columns(pl.lit(None, pl.String).alias("rule"))
    by_id = {r.id: r for r in rules}
    flags = subset.select([r.expr().alias(r.id) for r in rules])
    hits = []
    for r in rules:
        hit = pl.col(r.id)
        for other in r.unless_rules:
            if other in by_id:
                hit = hit & ~pl.col(other)
        hits.append(pl.when(hit).then(pl.lit(r.id)))
    found = subset.drop(added).with_columns(
        flags.select(pl.concat_list(hits).list.drop_nulls()).to_series().alias("rule")
    )
    return found.explode("rule").filter(pl.col("rule").is_not_null())
