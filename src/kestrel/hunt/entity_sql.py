"""Events → entities in one set-based query: one row per identity key, built by the engine.

GET and FIND turn event rows into entities. Each role of the entity type contributes a
``SELECT _key, <attributes>, time AS _time FROM events WHERE …``; the parts are stacked with
UNION ALL and grouped by ``_key`` with MIN per attribute (deterministic, NULL-skipping: the
attributes of an entity merge across its events), COUNT and MIN / MAX time.

Two things keep that group small, because at a million events the per-attribute aggregates
are almost all of a GET's time:

* attributes whose event column holds no value anywhere in the source (``present``) are
  not aggregated at all: they come out as typed NULL constants, the schema stays the same;
* a role marked ``only_new`` (a process named as some event's *parent*) adds rows only for
  entities no earlier role mentions: a process seen acting takes its attributes, count and
  times from its own events, and the parent mentions of it are dropped by an anti-join on
  the key instead of being aggregated;
* over the store's events table (DuckDB row ids), entities named by one row take that
  row's attributes without the aggregate, and only keys seen more than once are grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlglot import exp

from kestrel.hunt.entities import EntityType, Role

Present = Callable[[str, Role], frozenset[str]]
"""Event columns of ``role`` that hold a value somewhere in the source table."""

NullOf = Callable[[str], exp.Expr]
"""A typed NULL for a pruned attribute."""


def kept_attrs(
    etype: EntityType, roles: Sequence[Role], source: str, present: Present | None
) -> tuple[str, ...]:
    """The attributes worth aggregating: those some role fills from a non-empty column."""
    if present is None:
        return etype.attrs
    filled = {a for role in roles for a, column in role.columns.items()
              if column in present(source, role)}  # fmt: skip
    return tuple(a for a in etype.attrs if a in filled)


def entity_query(
    etype: EntityType,
    parts: Sequence[tuple[Role, exp.Select]],
    kept: Sequence[str],
    null_of: NullOf,
    limit: int | None = None,
    row_ids: bool = False,
) -> exp.Select:
    """``SELECT _key, attrs…, number_observed, first/last_observed`` per entity.

    With ``row_ids`` (each part carries a unique ``_rid``: DuckDB's rowid) and every later
    role ``only_new``, the roles' entities are disjoint: the first role's are built by
    `_two_phase`, the later roles' grouped, and the results stacked."""
    if row_ids and all(role.only_new for role, _ in parts[1:]):
        first = parts[0][1]
        pieces: list[exp.Query] = [_two_phase(etype, first, kept, null_of)]
        for _, part in parts[1:]:
            new = _without_keys(part, first)
            pieces.append(_grouped(etype, new.subquery("e", copy=False), kept, null_of))
        query = exp.select("*").from_(_union(pieces).subquery("ents", copy=False), copy=False)
    else:
        query = _grouped(etype, _stack(parts).subquery("e"), kept, null_of)
    if limit is not None:
        query = exp.select("*").from_(query.subquery("ent"))
        query = query.order_by("first_observed", "_key").limit(limit)
    return query


KEYS = "kestrel_keys"
"""`exp.Expr.meta` entry of an entity query: its `key_query` (set by the compiler)."""
COLUMNS = "kestrel_columns"
"""`exp.Expr.meta` entry of an entity query: its column names, in order (``_key``, every
attribute of the type, ``number_observed``, ``first_observed``, ``last_observed``)."""


def key_query(parts: Sequence[exp.Select]) -> exp.Select:
    """The keys of the entities the role parts make, without making them: one ``_key`` per
    matching event row, duplicates and all (``IN`` needs the set, not the entities).

    The same set as the entity query's keys when it has no LIMIT: grouping merges rows of
    one key, and an ``only_new`` part drops only keys an earlier part has. A FIND reading a
    GET variable for the first time needs nothing else from it, and this skips the group,
    the attributes and the anti-join (1M processes, FIND parents: 1.7 -> 1.2 CPU-s)."""
    rows = _union([exp.select(exp.column("_key")).from_(p.copy().subquery("kp", copy=False),
                                                       copy=False) for p in parts])  # fmt: skip
    return exp.select(exp.column("_key")).from_(rows.subquery("keys", copy=False), copy=False)


def _union(queries: Sequence[exp.Query]) -> exp.Query:
    """The queries (new trees, the caller's own) as one UNION ALL, built in place."""
    out = queries[0]
    for q in queries[1:]:
        out = exp.union(out, q, distinct=False, copy=False)
    return out


def _grouped(etype: EntityType, rows: exp.Expr, kept: Sequence[str], null_of: NullOf) -> exp.Select:
    """One row per key: MIN of each kept attribute, COUNT, MIN / MAX time."""
    attrs = [exp.func("MIN", exp.column(a)).as_(a) if a in kept else null_of(a).as_(a)
             for a in etype.attrs]  # fmt: skip
    return (
        exp.select("_key", *attrs,
                   exp.func("COUNT", exp.Star()).as_("number_observed"),
                   exp.func("MIN", exp.column("_time")).as_("first_observed"),
                   exp.func("MAX", exp.column("_time")).as_("last_observed"))
        .from_(rows, copy=False)
        .group_by("_key", copy=False)
    )  # fmt: skip


def _two_phase(
    etype: EntityType, rows: exp.Query, kept: Sequence[str], null_of: NullOf
) -> exp.Select:
    """Group only the keys (count, times, first row id), then take the attributes of keys
    seen once straight from their row and aggregate the rest: string MINs are most of a
    GET's time, and most entities are named by one event (1.64 -> 0.92 CPU-s at 1M).
    Same rows as `_grouped`: one row's MIN is the row's value.

    When ``rows`` is a plain scan of the events (no subquery: a GET), ``r`` is NOT
    MATERIALIZED: DuckDB otherwise keeps every matching event with all its attributes in a
    buffer for its three readers (the key group, the singles, the rest), where scanning the
    events again costs less and the key group reads the key columns only (1M GET all + DISP,
    4 interleaved runs each at load 9.5-12: 4.33-5.26 -> 3.82-4.22 CPU-s, 663-733 -> 607-637
    MB). A FIND's rows hold the semi-join on its input's keys, which would then run three
    times (4.0 -> 4.6 CPU-s), so they stay materialized."""
    n, rid = exp.func("COUNT", exp.Star()).as_("n"), exp.func("MIN", exp.column("_rid")).as_("rid")
    # the trees below are new and built in place (copy=False): sqlglot's builders copy the
    # whole query at every call by default, most of a GET's compile time
    counts = exp.select("_key", n, rid).from_("r", copy=False).group_by("_key", copy=False)
    once = exp.select("rid").from_("k", copy=False).where(exp.column("n").eq(1), copy=False)
    again = exp.select("_key").from_("k", copy=False).where(exp.column("n") > 1, copy=False)
    attrs = [exp.column(a) if a in kept else null_of(a).as_(a) for a in etype.attrs]
    one = exp.cast(exp.Literal.number(1), exp.DataType.build("bigint"))
    singles = exp.select("_key", *attrs, one.as_("number_observed"),
                         exp.column("_time").as_("first_observed"),
                         exp.column("_time").as_("last_observed")).from_("r", copy=False).where(
        exp.column("_rid").isin(query=once, copy=False), copy=False)  # fmt: skip
    multi = _grouped(etype, exp.to_table("r"), kept, null_of)
    multi = multi.where(exp.column("_key").isin(query=again, copy=False), copy=False)
    both = exp.union(singles, multi, distinct=False, copy=False)
    return (
        exp.select("*")
        .from_(both.subquery("ent", copy=False), copy=False)
        .with_("r", as_=rows.copy(), materialized=_scan_only(rows), copy=False)
        .with_("k", as_=counts, copy=False)
    )


def _scan_only(rows: exp.Query) -> bool | None:
    """False (NOT MATERIALIZED) when ``rows`` holds no subquery, else None (the engine's
    choice, which materializes a CTE read more than once)."""
    return None if any(q is not rows for q in rows.find_all(exp.Query)) else False


def row_id(role_index: int, roles: int) -> exp.Expr:
    """A row id unique across the role parts: ``rowid * roles + role_index`` (DuckDB)."""
    rid = exp.Mul(this=exp.column("rowid"), expression=exp.Literal.number(roles))
    return exp.Add(this=rid, expression=exp.Literal.number(role_index))


def _stack(parts: Sequence[tuple[Role, exp.Select]]) -> exp.Query:
    """The role parts as one UNION ALL; ``only_new`` parts lose keys the earlier parts have."""
    rows: exp.Query = parts[0][1]
    for role, part in parts[1:]:
        if role.only_new:
            part = _without_keys(part, rows)
        rows = exp.union(rows, part, distinct=False)
    return rows


def _without_keys(part: exp.Select, earlier: exp.Query) -> exp.Select:
    """``part`` without the rows whose ``_key`` occurs in ``earlier`` (keys are never NULL,
    and the subquery says so, so NOT IN is a plain anti-join; the part is wrapped because
    PostgreSQL cannot name a select-list alias in WHERE)."""
    seen = (
        exp.select("_key")
        .from_(earlier.copy().subquery("k", copy=False), copy=False)
        .where(exp.column("_key").is_(exp.null()).not_(), copy=False)
    )
    new = exp.column("_key").isin(query=seen, copy=False).not_(copy=False)
    return exp.select("*").from_(part.subquery("n"), copy=False).where(new, copy=False)
