"""The ``finding`` entity: Kestrel's own findings as hunt entities, in SQL over the store.

Findings live in the store's ``findings`` table (`kestrel.store.findings`), one row per
finding, not in the events. A finding entity is that row under the hunt's attribute names
(`kestrel.hunt.entities.FINDING`): ``id``, ``detector``, ``title``, ``severity`` as its name
(``info`` … ``critical``, so ``WHERE severity = 'high'`` reads as in the findings list) and
``severity_level`` as its rank (0 … 4, for ``severity_level >= 3``), the entity it is about,
the list-valued fields as the JSON text the table keeps (``techniques LIKE '%T1059%'``),
``number_observed`` = how many events it cites, ``first_observed`` / ``last_observed`` = its
span. Its identity is the finding id.

Relations go through the evidence: a finding cites the ``event_id``s it was raised on, so
``FIND process LINKED f`` is every process those events mention (any role, as LINKED is
between event entities) and ``FIND finding LINKED p`` is every finding citing an event that
mentions one of ``p``'s entities. The evidence list is unnested in the engine (DuckDB
``from_json``, PostgreSQL ``json_array_elements_text``): no finding passes through Python.
"""

from __future__ import annotations

from sqlglot import exp

from kestrel.hunt.entities import FINDING

# `kestrel.findings.model` (Severity) is imported where a hunt over findings needs it: a
# hunt over events never does, and the import is ≈ 5 ms of `kestrel hunt`'s start-up.
TABLE = "findings"


def rows() -> exp.Select:
    """Every stored finding as a finding entity (the columns of a ``finding`` variable)."""
    from kestrel.findings.model import Severity

    level = exp.column("severity")
    name = exp.Case(this=level.copy())
    for severity in Severity:
        name = name.when(exp.Literal.number(int(severity)), exp.Literal.string(str(severity)))
    cited = exp.func("JSON_ARRAY_LENGTH", exp.cast(exp.column("evidence"), "json"))
    columns: list[exp.Expr] = [exp.column("finding_id").as_("_key")]
    for attr in FINDING.attrs:
        source = FINDING.roles[0].columns[attr]
        if attr == "severity":
            columns.append(name.as_(attr))
        elif attr == "severity_level":
            columns.append(exp.cast(level.copy(), "bigint").as_(attr))
        else:
            columns.append(exp.column(source).as_(attr))
    columns += [
        exp.cast(cited, "bigint").as_("number_observed"),
        exp.column("first_seen").as_("first_observed"),
        exp.column("last_seen").as_("last_observed"),
    ]
    return exp.select(*columns).from_(TABLE)


def evidence_ids(table: exp.Table, dialect: str, with_id: bool = False) -> exp.Select:
    """``SELECT [finding id,] event_id`` for every event a finding in ``table`` cites
    (``table``: the findings table, ``id`` = ``finding_id``, or a finding variable, ``_key``)."""
    evidence = exp.column("evidence")
    if dialect == "postgres":
        each: exp.Expr = exp.Anonymous(
            this="JSON_ARRAY_ELEMENTS_TEXT", expressions=[exp.cast(evidence, "json")]
        )
    else:
        each = exp.Unnest(
            expressions=[exp.Anonymous(
                this="FROM_JSON", expressions=[evidence, exp.Literal.string('["VARCHAR"]')])]
        )  # fmt: skip
    id_column = "finding_id" if table.name == TABLE else "_key"
    ids = [exp.column(id_column).as_("_fid")] if with_id else []
    return exp.select(*ids, each.as_("event_id")).from_(table)


def citing(events: exp.Select, dialect: str) -> exp.Select:
    """``SELECT _fid``: the stored findings citing one of ``events``' ``event_id``s."""
    cited = evidence_ids(exp.to_table(TABLE), dialect, with_id=True).subquery("c")
    return exp.select("_fid").from_(cited).where(exp.column("event_id").isin(query=events))


_ORDERED = (exp.GT, exp.GTE, exp.LT, exp.LTE)


def ranked(condition: exp.Expr) -> exp.Expr:
    """``severity >= 'high'`` compares ranks (``severity_level >= 3``), not text: as text,
    'medium' would be above 'high' and 'critical' below it. Equality stays on the name."""

    from kestrel.findings.model import Severity

    def rank(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, _ORDERED):
            return node
        column, value = node.this, node.expression
        if not (isinstance(column, exp.Column) and column.name == "severity"):
            return node
        if not (isinstance(value, exp.Literal) and value.is_string):
            return node
        try:
            level = Severity.parse(value.name)
        except KeyError:
            return node
        return type(node)(
            this=exp.column("severity_level"), expression=exp.Literal.number(int(level))
        )

    return condition.transform(rank)
