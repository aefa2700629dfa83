"""WHERE expressions → SQL conditions (sqlglot trees), for events and for variables.

The same hunt expression is compiled against two kinds of table: the events (GET, FIND),
where an attribute is an event column through an entity role, and a variable's table
(``v WHERE …``, DISP), where it is a column of the variable. The caller passes a
``resolve(attr, span)`` that knows which; everything else — operators, lists, references
to other variables (``pid IN v.pid``), case-insensitive matching — is handled here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from kestrel.errors import HuntError, HuntNameError
from kestrel.hunt import ast

Resolve = Callable[[str, ast.Span], exp.Expr]
"""attribute name as written → the SQL column (raises HuntNameError when unknown)."""
RefColumn = Callable[[str, str, ast.Span], exp.Select]
"""(variable, attribute) → ``SELECT col FROM variable_table`` (every value of it)."""
SigmaTable = Callable[[str, ast.Span], exp.Select]
"""Sigma rule id or path → ``SELECT event_id FROM …`` of the events it matches."""


@dataclass(frozen=True, slots=True)
class ExprContext:
    """What compiling an expression needs besides the expression."""

    resolve: Resolve
    ref_column: RefColumn
    is_variable: Callable[[str], bool]
    ignore_case: bool = False
    sigma: SigmaTable | None = None


def condition(expr: ast.Expr, ctx: ExprContext) -> exp.Expr:
    """The SQL condition for a WHERE expression."""
    if isinstance(expr, ast.BoolOp):
        left, right = condition(expr.left, ctx), condition(expr.right, ctx)
        return exp.and_(left, right) if expr.op == "AND" else exp.or_(left, right)
    if isinstance(expr, ast.SigmaMatch):
        if ctx.sigma is None:
            raise HuntError("SIGMA matches events: use it in GET", expr.span.line, expr.span.col)
        return exp.column("event_id").isin(query=ctx.sigma(expr.rule, expr.span))
    return _comparison(expr, ctx)


def _comparison(c: ast.Comparison, ctx: ExprContext) -> exp.Expr:
    column = ctx.resolve(c.attr, c.span)
    op = c.op
    if op in ("IS", "IS NOT"):
        test = column.is_(exp.null())
        return test if op == "IS" else exp.not_(test)
    negated = op.startswith("NOT ") or op == "!="
    base = op.removeprefix("NOT ")
    if base in ("=", "!=", "IN") and _is_set(c.value, ctx):
        return _membership(column, c.value, negated, ctx)
    if base in ("IN",):
        raise HuntError("IN needs a list or var.attr", c.span.line, c.span.col)
    value = _scalar(c.value, ctx)
    built = _operator(base, column, value, ctx.ignore_case, c.span)
    return exp.not_(built) if negated and base != "!=" else built


def _is_set(value: ast.Value, ctx: ExprContext) -> bool:
    if isinstance(value, ast.ListValue):
        return True
    return isinstance(value, ast.Reference) and _is_ref(value, ctx)


def _is_ref(value: ast.Reference, ctx: ExprContext) -> bool:
    """``v.attr`` names a variable's attribute when ``v`` is a variable; else it is text."""
    if not ctx.is_variable(value.variable):
        return False
    if value.attr is None:
        raise HuntNameError(
            f"variable {value.variable} needs an attribute here, e.g. {value.variable}.pid",
            value.span.line, value.span.col,
        )  # fmt: skip
    return True


def _scalar(value: ast.Value, ctx: ExprContext) -> exp.Expr:
    if isinstance(value, ast.Literal):
        return _literal(value.value)
    if isinstance(value, ast.Reference):
        text = value.variable + (f".{value.attr}" if value.attr else "")
        return exp.Literal.string(text)  # Kestrel's unquoted string
    raise HuntError("a list is not a single value", value.span.line, value.span.col)


def _literal(value: ast.Scalar) -> exp.Expr:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(value)


def _membership(column: exp.Expr, value: ast.Value, negated: bool, ctx: ExprContext) -> exp.Expr:
    items = value.items if isinstance(value, ast.ListValue) else (value,)
    literals: list[exp.Expr] = []
    parts: list[exp.Expr] = []
    for item in items:
        if isinstance(item, ast.Reference) and _is_ref(item, ctx):
            sub = ctx.ref_column(item.variable, str(item.attr), item.span)
            if negated:  # NOT IN over a set holding NULL is never true: leave NULLs out
                sub = sub.where(exp.column(sub.selects[0].alias_or_name).is_(exp.null()).not_())
            parts.append(_fold(column, ctx).isin(query=_fold_query(sub, ctx)))
        else:
            literals.append(_fold(_scalar(item, ctx), ctx))
    if literals:
        parts.insert(0, _fold(column, ctx).isin(*literals))
    test = parts[0] if len(parts) == 1 else exp.or_(*parts)
    return exp.not_(test) if negated else test


def _fold(e: exp.Expr, ctx: ExprContext) -> exp.Expr:
    """LOWER() when matching ignores case (strings only; numbers pass through)."""
    if not ctx.ignore_case:
        return e
    if isinstance(e, exp.Literal) and not e.is_string:
        return e
    return exp.Lower(this=exp.cast(e, exp.DataType.build("text")))


def _fold_query(sub: exp.Select, ctx: ExprContext) -> exp.Select:
    if not ctx.ignore_case:
        return sub
    first = sub.selects[0]
    return exp.select(_fold(exp.column(first.alias_or_name), ctx)).from_(sub.subquery("r"))


def _operator(op: str, column: exp.Expr, value: exp.Expr, nocase: bool, span: ast.Span) -> exp.Expr:
    if op in ("=", "!="):
        if nocase and isinstance(value, exp.Literal) and value.is_string:
            column, value = exp.Lower(this=column), exp.Lower(this=value)
        return exp.EQ(this=column, expression=value) if op == "=" else exp.NEQ(
            this=column, expression=value)  # fmt: skip
    comparisons = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
    if op in comparisons:
        return comparisons[op](this=column, expression=value)
    if op == "LIKE":
        return (exp.ILike if nocase else exp.Like)(this=column, expression=value)
    if op == "ILIKE":
        return exp.ILike(this=column, expression=value)
    if op == "MATCHES":
        return exp.RegexpLike(this=column, expression=value, flag=exp.Literal.string("i")
                              if nocase else None)  # fmt: skip
    if op == "ISSUBSET":
        return _in_cidr(column, value, span)
    raise HuntError(f"operator {op} is not supported here", span.line, span.col)


def _in_cidr(column: exp.Expr, value: exp.Expr, span: ast.Span) -> exp.Expr:
    """``ip ISSUBSET '10.0.0.0/8'`` for IPv4, as integer arithmetic both engines run."""
    text = value.name if isinstance(value, exp.Literal) else ""
    network, _, bits = text.partition("/")
    try:
        base, size = _ip_int(network), 32 - int(bits or 32)
    except ValueError:
        raise HuntError(f"ISSUBSET needs an IPv4 CIDR, not {text!r}", span.line, span.col) from None
    low = base >> size << size
    high = low + (1 << size) - 1
    is_v4 = exp.RegexpLike(this=column, expression=exp.Literal.string(r"^\d+\.\d+\.\d+\.\d+$"))
    number = exp.Case().when(is_v4, _ip_sql(column))
    return exp.Between(this=number, low=exp.Literal.number(low), high=exp.Literal.number(high))


def _ip_int(text: str) -> int:
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or any(not 0 <= p < 256 for p in parts):
        raise ValueError(text)
    return (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]


def _ip_sql(column: exp.Expr) -> exp.Expr:
    total: exp.Expr | None = None
    for i, scale in enumerate((16777216, 65536, 256, 1), 1):
        octet = exp.cast(
            exp.func("SPLIT_PART", column, exp.Literal.string("."), exp.Literal.number(i)),
            exp.DataType.build("bigint"),
        )
        term = exp.Mul(this=octet, expression=exp.Literal.number(scale))
        total = term if total is None else exp.Add(this=total, expression=term)
    assert total is not None
    return total
