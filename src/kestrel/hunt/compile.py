"""Hunt commands → one SQL SELECT each, built with sqlglot and written in the store's dialect.

Each command that yields a variable compiles to a SELECT whose rows are the variable's
entities: one row per entity (``_key`` is its identity), the type's canonical attributes,
``first_observed`` / ``last_observed`` from the events that mention it. The session
materializes the SELECT as a temporary table; a later command reads that table, so every
step is pushed down to the engine and no event passes through Python.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlglot import exp

from kestrel.errors import HuntError, HuntNameError
from kestrel.events.schema import COLUMN_NAMES, COLUMN_TYPES
from kestrel.hunt import ast, findings
from kestrel.hunt.entities import ENTITY_TYPES, FINDING, TYPE_ALIASES, EntityType, Role
from kestrel.hunt.entity_sql import (
    COLUMNS,
    KEYS,
    Present,
    entity_query,
    kept_attrs,
    key_query,
    row_id,
)
from kestrel.hunt.relations import known, lookup
from kestrel.hunt.where import ExprContext, SigmaTable, condition

_SQL_TYPE = {"string": "text", "int64": "bigint", "double": "double",
             "timestamp[us, tz=UTC]": "timestamptz"}  # fmt: skip
TIMES = ("first_observed", "last_observed")
_TRAILING = ("number_observed", *TIMES)  # shown last by DISP


@dataclass(frozen=True, slots=True)
class VarInfo:
    """A materialized variable: its table, entity type, columns and where it came from."""

    name: str
    table: str
    entity_type: str
    columns: tuple[str, ...]
    source: str
    sql: str = ""
    # the keys of the entities, from the events without building the entities (`key_query`);
    # None when the variable's rows must be read (a table, a LIMIT, a filter on entities)
    keys: exp.Select | None = None
    # the query reads the store's events and nothing else: DISP may store its rows
    # (`kestrel.hunt.results`)
    events_only: bool = False
    # ``table`` holds the rows in DISP's default order already (a stored result)
    ordered: bool = False

    @property
    def visible(self) -> tuple[str, ...]:
        """Columns a hunter sees (``_key`` and ``_order`` are bookkeeping)."""
        return tuple(c for c in self.columns if not c.startswith("_"))


class Catalog(Protocol):
    """The session's variables, as the compiler needs them."""

    def variable(self, name: str, span: ast.Span) -> VarInfo:
        """The variable ``name``; raises HuntNameError (with "did you mean") when unknown."""
        ...

    def is_variable(self, name: str) -> bool:
        """Whether ``name`` is a variable now."""
        ...


def entity_type(name: str, span: ast.Span) -> EntityType:
    """The entity type a hunt names (``process``, ``network-traffic``, ``ipv4-addr`` …)."""
    canonical = TYPE_ALIASES.get(name.lower())
    if canonical is None:
        close = difflib.get_close_matches(name.lower(), list(TYPE_ALIASES), n=1)
        hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(ENTITY_TYPES)
        raise HuntNameError(f"unknown entity type {name!r}", span.line, span.col, hint)
    return ENTITY_TYPES[canonical]


def _typed_null(etype: EntityType, attr: str) -> exp.Expr:
    column = next((r.columns[attr] for r in etype.roles if attr in r.columns), None)
    sql_type = _SQL_TYPE.get(str(COLUMN_TYPES[column]), "text") if column else "text"
    return exp.cast(exp.null(), exp.DataType.build(sql_type))


def _table(name: str) -> exp.Table:
    return exp.to_table(name, quoted=True) if not name.isidentifier() else exp.to_table(name)


class Compiler:
    """Compiles one command at a time against the session's catalog."""

    def __init__(
        self,
        catalog: Catalog,
        dialect: str = "duckdb",
        now: datetime | None = None,
        ignore_case: bool = False,
        sigma: SigmaTable | None = None,
        present: Present | None = None,
    ) -> None:
        self.catalog = catalog
        self.present = present
        self.dialect = dialect
        self.now = now or datetime.now(UTC)
        self.ignore_case = ignore_case
        self.sigma = sigma

    # -- GET and FIND: events → entities ------------------------------------------------------

    def get(self, c: ast.Get, source: str) -> exp.Select:
        """Entities of a type mentioned by the events in ``source`` that match WHERE."""
        etype = entity_type(c.entity_type, c.span)
        if etype is FINDING:
            return self._findings(c.where, self._span(c.time), c.limit)
        extra = self._time(c.time)
        return self._entities(etype, etype.primary, source, c.where, extra, c.limit)

    def find(self, c: ast.Find) -> exp.Select:
        """Entities related to a variable's entities, through the events that link them."""
        out = entity_type(c.entity_type, c.span)
        var = self.catalog.variable(c.variable, c.span)
        source = ENTITY_TYPES[var.entity_type]
        if FINDING in (out, source):
            return self._find_linked(c, out, var, source)
        relation = lookup(out.name, c.relation, source.name, c.reversed)
        if relation is None:
            word = c.relation + (" BY" if c.reversed else "")
            close = difflib.get_close_matches(word, known(out.name, source.name), n=1)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else f"known: {', '.join(known(out.name, source.name))}"
            )
            raise HuntNameError(f"no relation {word} from {source.name} to {out.name}",
                                c.span.line, c.span.col, hint)  # fmt: skip
        keys = _keys(var)
        roles = tuple(out.role(r) for r in relation.output_roles)
        matches = [
            _mentions(source, source.role(r))
            if _holds_every_key(var, source, source.role(r), roles)
            else _key_sql(source, source.role(r)).isin(query=keys.copy(), copy=False)
            for r in relation.input_roles
        ]
        extra = [exp.or_(*matches) if len(matches) > 1 else matches[0], *self._time(c.time)]
        if relation.activity:
            extra.append(exp.column("activity").eq(exp.Literal.string(relation.activity)))
        return self._entities(out, roles, var.source, c.where, extra, c.limit)

    # -- findings (kestrel.hunt.findings) -----------------------------------------------------

    def _findings(
        self, where: ast.Where | None, extra: list[exp.Expr], limit: int | None
    ) -> exp.Select:
        """Stored findings as entities, filtered; ``LIMIT`` keeps the earliest."""
        query = exp.select("*").from_(findings.rows().subquery("f"))
        for e in extra:
            query = query.where(e)
        if where is not None:
            context = ExprContext(self._finding_attr, self._ref_column, self.catalog.is_variable,
                                  self.ignore_case)  # fmt: skip
            query = query.where(findings.ranked(condition(where.expr, context)))
        if limit is not None:
            query = query.order_by("first_observed", "_key").limit(limit)
        return query

    def _find_linked(
        self, c: ast.Find, out: EntityType, var: VarInfo, source: EntityType
    ) -> exp.Select:
        """``FIND t LINKED findings`` (the entities of the events the findings cite) and
        ``FIND finding LINKED v`` (the findings citing an event that mentions v's entities)."""
        if c.relation != "LINKED" or c.reversed or out is source:
            word = c.relation + (" BY" if c.reversed else "")
            hint = "known: LINKED" if out is not source else "FIND another type LINKED it"
            raise HuntNameError(f"no relation {word} from {source.name} to {out.name}",
                                c.span.line, c.span.col, hint)  # fmt: skip
        if source is FINDING:
            cited = findings.evidence_ids(_table(var.table), self.dialect)
            extra = [exp.column("event_id").isin(query=cited), *self._time(c.time)]
            return self._entities(out, out.primary, var.source, c.where, extra, c.limit)
        keys = _keys(var)
        mentions: list[exp.Expr] = []
        for role in source.primary:
            match: exp.Expr = _key_sql(source, role).isin(query=keys.copy())
            if role.classes:
                classes = (exp.Literal.string(k) for k in role.classes)
                match = exp.and_(exp.column("class", quoted=True).isin(*classes), match)
            mentions.append(match)
        events = exp.select("event_id").from_(_table(var.source)).where(exp.or_(*mentions))
        for e in self._time(c.time):
            events = events.where(e)
        linked = exp.column("_key").isin(query=findings.citing(events, self.dialect))
        return self._findings(c.where, [linked], c.limit)

    def _finding_attr(self, attr: str, span: ast.Span) -> exp.Expr:
        canonical = FINDING.canonical(attr)
        if canonical is not None:
            return exp.column(canonical)
        if attr in _TRAILING:
            return exp.column(attr)
        close = difflib.get_close_matches(attr, [*FINDING.attrs, *FINDING.aliases], n=1)
        hint = f"did you mean {close[0]}?" if close else "attributes: " + ", ".join(FINDING.attrs)
        raise HuntNameError(f"finding has no attribute {attr!r}", span.line, span.col, hint)

    def _span(self, time: ast.TimeRange | None) -> list[exp.Expr]:
        """A time range over findings: those whose span overlaps it (the range's start is
        compared with a finding's last time, its end with the first)."""
        spans = []
        for e in self._time(time):
            column = "last_observed" if isinstance(e, exp.GTE) else "first_observed"
            spans.append(e.transform(
                lambda n, c=column: exp.column(c) if isinstance(n, exp.Column) else n))  # fmt: skip
        return spans

    def _entities(
        self,
        etype: EntityType,
        roles: tuple[Role, ...],
        source: str,
        where: ast.Where | None,
        extra: list[exp.Expr],
        limit: int | None,
    ) -> exp.Select:
        kept = kept_attrs(etype, roles, source, self.present)
        # the store's events table has DuckDB row ids (file sources are Arrow scans: none)
        ids = self.dialect == "duckdb" and source == "events" and self.present is not None
        parts = [(role, self._role_rows(etype, role, source, where, extra, kept)) for role in roles]
        if ids:
            parts = [
                (r, q.select(row_id(i, len(roles)).as_("_rid"), copy=False))
                for i, (r, q) in enumerate(parts)
            ]
        query = entity_query(etype, parts, kept, lambda a: _typed_null(etype, a), limit, ids)
        if limit is None:
            query.meta[KEYS] = key_query([q for _, q in parts])
            if where is None and not extra:
                # every row of these roles that mentions the entity gives a key (`_holds_every_key`)
                query.meta[KEYS].meta[WHOLE] = (source, tuple(r.name for r in roles))
        query.meta[COLUMNS] = ("_key", *etype.attrs, *_TRAILING)
        return query

    def _role_rows(
        self,
        etype: EntityType,
        role: Role,
        source: str,
        where: ast.Where | None,
        extra: list[exp.Expr],
        kept: tuple[str, ...],
    ) -> exp.Select:
        def col(attr: str) -> exp.Expr:
            return (
                exp.column(role.columns[attr]) if attr in role.columns else _typed_null(etype, attr)
            )

        present = _mentions(etype, role)
        # every tree below is new and this function's own: built in place (copy=False), not
        # copied whole at each step as sqlglot's builders do by default (≈ a third of the
        # CPU of compiling a GET)
        query = exp.select(etype.key(col).as_("_key"), *(col(a).as_(a) for a in kept),
                           exp.column("time").as_("_time"))  # fmt: skip
        query = query.from_(_table(source), copy=False)
        if role.classes:
            query = query.where(exp.column("class", quoted=True).isin(
                *(exp.Literal.string(c) for c in role.classes)), copy=False)  # fmt: skip
        query = query.where(present, copy=False)
        for e in extra:
            query = query.where(e.copy(), copy=False)
        if where is not None:
            query = query.where(
                condition(where.expr, self._events_context(etype, role)), copy=False
            )
        return query

    def _events_context(self, etype: EntityType, role: Role) -> ExprContext:
        def resolve(attr: str, span: ast.Span) -> exp.Expr:
            return _event_column(etype, role, attr, span)

        return ExprContext(resolve, self._ref_column, self.catalog.is_variable,
                           self.ignore_case, self.sigma)  # fmt: skip

    def _time(self, time: ast.TimeRange | None) -> list[exp.Expr]:
        if time is None:
            return []
        column = exp.column("time")
        if time.last is not None:
            since = self.now - timedelta(**{str(time.unit).lower(): time.last})
            return [column >= _timestamp(since.isoformat())]
        return [column >= _timestamp(str(time.start)), column < _timestamp(str(time.stop))]

    # -- commands over variables --------------------------------------------------------------

    def filter(self, c: ast.VarExpr) -> exp.Select:
        """``v WHERE … [ATTR …] [SORT BY …] [LIMIT …]`` as a new variable."""
        var = self.catalog.variable(c.variable, c.span)
        names = ["_key", *(self._var_attr(var, a, c.span) for a in c.attrs)] if c.attrs else ["*"]
        query = exp.select(*names).from_(_table(var.table))
        query = self._filter_clauses(query, var, c)
        if c.sort:
            order = self._order(var, c.sort, c.direction, c.span)
            query = exp.select("*", exp.Window(this=exp.RowNumber(), order=exp.Order(
                expressions=[order])).as_("_order")).from_(query.subquery("s"))  # fmt: skip
            if "_order" in var.columns:
                query = query.select(exp.Star(**{"except": [exp.column("_order")]}), append=False)
        return query

    def _filter_clauses(self, query: exp.Select, var: VarInfo, c: ast.VarExpr) -> exp.Select:
        if c.where is not None:
            query = query.where(condition(c.where.expr, self._var_context(var)))
        if c.limit is not None or c.offset is not None:
            query = query.order_by(*self._default_order(var, c))
        if c.limit is not None:
            query = query.limit(c.limit)
        if c.offset is not None:
            query = query.offset(c.offset)
        return query

    def disp(self, c: ast.VarExpr, var: VarInfo | None = None) -> exp.Select:
        """The rows DISP shows: chosen attributes, filtered, ordered, one page. ``var`` is
        the variable as stored (`kestrel.hunt.results`) when the session has it so; its
        rows are in the default order already, and a whole DISP of them is not sorted."""
        var = var or self.catalog.variable(c.variable, c.span)
        attrs = c.attrs or self._default_attrs(var, c.transform)
        columns = [exp.column(self._var_attr(var, a, c.span)).as_(a, quoted=True) for a in attrs]
        query = exp.select(*columns).from_(_table(var.table))
        if not (var.ordered and c.sort is None):
            query = query.order_by(*self._default_order(var, c))
        plain = ast.VarExpr(c.variable, where=c.where, limit=c.limit, offset=c.offset, span=c.span)
        return (
            self._filter_clauses(query, var, plain)
            if (c.where or c.limit is not None or c.offset is not None)
            else query
        )

    def _default_attrs(self, var: VarInfo, transform: str | None) -> tuple[str, ...]:
        visible = var.visible
        if transform == "TIMESTAMPED":
            return ("first_observed", *(v for v in visible if v != "first_observed"))
        return tuple(v for v in visible if v not in _TRAILING) + tuple(
            v for v in _TRAILING if v in visible)  # fmt: skip

    def _default_order(self, var: VarInfo, c: ast.VarExpr) -> list[exp.Expr]:
        if c.sort:
            return [self._order(var, c.sort, c.direction, c.span)]
        if "_order" in var.columns:
            return [exp.column("_order")]
        firsts: list[exp.Expr] = [exp.column(t) for t in ("first_observed",) if t in var.columns]
        return (
            [*firsts, exp.column("_key")]
            if "_key" in var.columns
            else firsts or [exp.Literal.number(1)]
        )

    def _order(self, var: VarInfo, attr: str, direction: str | None, span: ast.Span) -> exp.Ordered:
        column = exp.column(self._var_attr(var, attr, span))
        # Kestrel sorts descending unless told ASC; NULLs last either way
        desc = direction != "ASC"
        return exp.Ordered(this=column, desc=desc, nulls_first=False)

    def sort(self, c: ast.Sort) -> exp.Select:
        """``SORT v BY attr [ASC|DESC]``: the same entities with an order kept for DISP."""
        return self.filter(ast.VarExpr(c.variable, sort=c.attr, direction=c.direction, span=c.span))

    def copy(self, variable: str, span: ast.Span) -> exp.Select:
        """``COPY v`` / ``v2 = v``: the same rows in a table of their own."""
        return exp.select("*").from_(_table(self.catalog.variable(variable, span).table))

    def merge(self, c: ast.Merge) -> exp.Select:
        """``a + b``: one row per entity over both (attributes: the smallest non-NULL value)."""
        vars_ = [self.catalog.variable(n, c.span) for n in c.variables]
        types = {v.entity_type for v in vars_}
        if len(types) > 1:
            raise HuntError(f"cannot merge entity types {sorted(types)}", c.span.line, c.span.col)
        columns = list(dict.fromkeys(col for v in vars_ for col in v.columns if col != "_order"))
        parts = [exp.select(*(col if col in v.columns else exp.null().as_(col) for col in columns))
                 .from_(_table(v.table)) for v in vars_]  # fmt: skip
        rows: exp.Query = parts[0]
        for part in parts[1:]:
            rows = exp.union(rows, part, distinct=False)
        aggs = [self._merge_agg(col) for col in columns if col != "_key"]
        return exp.select("_key", *aggs).from_(rows.subquery("m")).group_by("_key")

    @staticmethod
    def _merge_agg(col: str) -> exp.Expr:
        func = {"last_observed": "MAX", "number_observed": "SUM"}.get(col, "MIN")
        return exp.func(func, exp.column(col)).as_(col)

    def group(self, c: ast.Group) -> exp.Select:
        """``GROUP v BY keys [WITH aggregations]``: one row per group."""
        var = self.catalog.variable(c.variable, c.span)
        keys = [self._group_key(var, k, c.span) for k in c.keys]
        aggs = [self._aggregate(var, a, c.span) for a in c.aggs] or [
            exp.func("COUNT", exp.Star()).as_("number_observed")]  # fmt: skip
        names = [k.alias_or_name for k in keys]
        key = exp.func("CONCAT_WS", exp.Literal.string("|"), *(exp.column(n) for n in names))
        inner = exp.select(*keys, *aggs).from_(_table(var.table)).group_by(
            *(exp.Literal.number(i + 1) for i in range(len(keys))))  # fmt: skip
        return exp.select(key.as_("_key"), "*").from_(inner.subquery("g"))

    def _group_key(self, var: VarInfo, key: ast.GroupKey, span: ast.Span) -> exp.Expr:
        column = exp.column(self._var_attr(var, key.attr, span))
        name = self._var_attr(var, key.attr, span)
        if key.bin_size is None:
            return column.as_(name)
        if key.bin_unit or name in TIMES:
            unit = (key.bin_unit or "MINUTES").lower().rstrip("s")
            interval = exp.Interval(this=exp.Literal.string(str(key.bin_size)), unit=exp.var(unit))
            if self.dialect == "postgres":
                epoch = exp.cast(
                    exp.Literal.string("1970-01-01"), exp.DataType.build("timestamptz")
                )
                return exp.Anonymous(this="DATE_BIN", expressions=[interval, column, epoch]).as_(
                    name
                )
            return exp.Anonymous(this="TIME_BUCKET", expressions=[interval, column]).as_(name)
        size = exp.Literal.number(key.bin_size)
        return exp.Mul(this=exp.Floor(this=exp.Div(this=column, expression=size)),
                       expression=size).as_(name)  # fmt: skip

    def _aggregate(self, var: VarInfo, agg: ast.Aggregation, span: ast.Span) -> exp.Expr:
        column = exp.column(self._var_attr(var, agg.attr, span))
        alias = agg.alias or f"{agg.func.lower()}_{agg.attr}"
        if agg.func == "NUNIQUE":
            return exp.Count(this=exp.Distinct(expressions=[column])).as_(alias)
        return exp.func(agg.func, column).as_(alias)

    def join(self, c: ast.Join) -> exp.Select:
        """``JOIN a, b [BY x, y]``: entities of ``a`` with a match in ``b``, plus ``b``'s
        attributes that ``a`` lacks (the smallest value when several rows of ``b`` match)."""
        left = self.catalog.variable(c.left, c.span)
        right = self.catalog.variable(c.right, c.span)
        lcol = self._var_attr(left, c.left_attr, c.span) if c.left_attr else "_key"
        rcol = self._var_attr(right, c.right_attr, c.span) if c.right_attr else "_key"
        extra = [x for x in right.columns if x not in left.columns and x != "_order"]
        mins = (exp.func("MIN", exp.column(x)).as_(x) for x in extra)
        inner = exp.select(exp.column(rcol).as_("_jk"), *mins).from_(_table(right.table))
        inner = inner.group_by(exp.column(rcol))
        on = exp.column(lcol, table="l").eq(exp.column("_jk", table="r"))
        return (
            exp.select(*(exp.column(x, table="l") for x in left.columns),
                       *(exp.column(x, table="r") for x in extra))
            .from_(exp.alias_(_table(left.table), "l"))
            .join(inner.subquery("r"), on=on)
        )  # fmt: skip

    # -- resolution ---------------------------------------------------------------------------

    def _var_context(self, var: VarInfo) -> ExprContext:
        def resolve(attr: str, span: ast.Span) -> exp.Expr:
            return exp.column(self._var_attr(var, attr, span))

        return ExprContext(resolve, self._ref_column, self.catalog.is_variable, self.ignore_case)

    def _var_attr(self, var: VarInfo, attr: str, span: ast.Span) -> str:
        """The column of ``var`` that ``attr`` names (any spelling), or HuntNameError."""
        if attr in var.columns:
            return attr
        canonical = ENTITY_TYPES[var.entity_type].canonical(attr)
        if canonical is not None and canonical in var.columns:
            return canonical
        close = difflib.get_close_matches(attr, var.visible, n=1)
        hint = f"did you mean {close[0]}?" if close else "attributes: " + ", ".join(var.visible)
        raise HuntNameError(
            f"variable {var.name} has no attribute {attr!r}", span.line, span.col, hint
        )

    def _ref_column(self, variable: str, attr: str, span: ast.Span) -> exp.Select:
        var = self.catalog.variable(variable, span)
        column = self._var_attr(var, attr, span)
        return exp.select(exp.column(column)).from_(_table(var.table))


# on a variable's key query: (source, role names) when its keys are those of every event of
# those roles in that source (a GET with no WHERE, time range or LIMIT)
WHOLE = "kestrel_whole_roles"


def _holds_every_key(var: VarInfo, etype: EntityType, role: Role, out: tuple[Role, ...]) -> bool:
    """Whether ``var``'s keys hold ``role``'s key of every event row that the output roles
    ``out`` read, whenever that key is not NULL: then ``key IN (var's keys)`` is ``key IS NOT
    NULL`` and FIND needs no semi-join over the variable's keys (1M processes, FIND parents of
    GET all: ≈ 0.6 CPU-s less). It holds when the variable is a whole GET over the same source
    with ``role`` among its roles, the key is NULL on a row that does not mention the entity,
    and every output role's classes are among ``role``'s (rows outside them give no key).
    For such a key type ``key IS NOT NULL`` is `_mentions`, which builds no key text (1M
    processes: ≈ 0.1-0.3 CPU-s less again)."""
    whole = var.keys.meta.get(WHOLE) if var.keys is not None else None
    if whole is None or not etype.key_null_iff_no_required:
        return False
    source, names = whole
    if source != var.source or role.name not in names or var.entity_type != etype.name:
        return False
    return all(r.classes and set(r.classes) <= set(role.classes) for r in out) or not role.classes


def _keys(var: VarInfo) -> exp.Select:
    """``SELECT _key`` of a variable's entities (FIND matches events against them)."""
    if var.keys is not None:
        return var.keys.copy()
    return exp.select("_key").from_(_table(var.table))


def _mentions(etype: EntityType, role: Role) -> exp.Expr:
    """Whether an event row mentions the entity in ``role``: one of its required attributes
    is set (for a `key_null_iff_no_required` type: its key is not NULL, without building it)."""
    present = [exp.column(role.columns[a]).is_(exp.null()).not_()
               for a in etype.required if a in role.columns]  # fmt: skip
    return exp.or_(*present) if len(present) > 1 else present[0]


def _key_sql(etype: EntityType, role: Role) -> exp.Expr:
    def col(attr: str) -> exp.Expr:
        return exp.column(role.columns[attr]) if attr in role.columns else _typed_null(etype, attr)

    return etype.key(col)


def _event_column(etype: EntityType, role: Role, attr: str, span: ast.Span) -> exp.Expr:
    """An attribute in GET / FIND: this role's column, another type's (``x-oca-asset:hostname``),
    or any event-schema column by its own name (``channel``, ``event_code``)."""
    canonical = etype.canonical(attr)
    if canonical is not None:
        return (
            exp.column(role.columns[canonical])
            if canonical in role.columns
            else _typed_null(etype, canonical)
        )
    if attr in TIMES:
        return exp.column("time")
    prefix, colon, rest = attr.partition(":")
    other = ENTITY_TYPES.get(TYPE_ALIASES.get(prefix, "")) if colon else None
    if other is not None and other is not FINDING and (name := other.canonical(rest)) is not None:
        column = next((r.columns[name] for r in other.primary if name in r.columns), None)
        if column:
            return exp.column(column)
    if attr in COLUMN_NAMES:
        return exp.column(attr, quoted=attr == "class")
    candidates = [*etype.attrs, *etype.aliases, *COLUMN_NAMES]
    close = difflib.get_close_matches(attr, candidates, n=1)
    hint = f"did you mean {close[0]}?" if close else "attributes: " + ", ".join(etype.attrs)
    raise HuntNameError(f"{etype.name} has no attribute {attr!r}", span.line, span.col, hint)


def _timestamp(text: str) -> exp.Expr:
    value = text if text.endswith(("Z", "+00:00")) or "+" in text[10:] else text + "Z"
    return exp.cast(
        exp.Literal.string(value.replace("Z", "+00:00")), exp.DataType.build("timestamptz")
    )


def sql(query: exp.Expr, dialect: str) -> str:
    """The SQL text of ``query`` for ``dialect`` (``duckdb`` or ``postgres``)."""
    from kestrel.hunt.duckdb_sql import sql as text

    return text(query, dialect)


ToSql = Callable[[exp.Expr], str]
