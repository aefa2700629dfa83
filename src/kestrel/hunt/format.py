"""AST → hunt text, in one canonical spelling.

Used by the identity tests (``parse(format(x)) == x`` and canonical text round-trips
unchanged, sqlglot's identity.sql idea), by EXPLAIN and by error messages that quote a
statement. Canonical means: keywords upper-case, strings in single quotes, one space
between tokens, clauses in grammar order.
"""

from __future__ import annotations

import json
from functools import singledispatch

from kestrel.hunt import ast


def format_hunt(hunt: ast.Hunt) -> str:
    """The whole hunt, one statement per line."""
    return "\n".join(format_statement(s) for s in hunt.statements)


def format_statement(statement: ast.Statement) -> str:
    """One statement, with its assignment."""
    text = _command(statement.command)
    if isinstance(statement.command, ast.Merge):
        return f"{statement.target} = {text}"
    return f"{statement.target} = {text}" if statement.target else text


def format_where(where: ast.Where) -> str:
    """``WHERE …`` (bracketed when written as a STIX pattern)."""
    body = format_expr(where.expr)
    return f"WHERE [{body}]" if where.stix else f"WHERE {body}"


def format_expr(expr: ast.Expr, parent: str | None = None) -> str:
    """An expression; OR inside AND gets parentheses, so precedence survives."""
    if isinstance(expr, ast.SigmaMatch):
        return f"SIGMA {_string(expr.rule)}"
    if isinstance(expr, ast.Comparison):
        return f"{expr.attr} {expr.op} {format_value(expr.value)}"
    left = format_expr(expr.left, expr.op)
    # the grammar is left-associative: a compound right operand came from brackets
    right = format_expr(expr.right)
    if isinstance(expr.right, ast.BoolOp):
        right = f"({right})"
    text = f"{left} {expr.op} {right}"
    return f"({text})" if parent == "AND" and expr.op == "OR" else text


def format_value(value: ast.Value) -> str:
    """A literal, ``var.attr`` reference or list."""
    if isinstance(value, ast.ListValue):
        return "(" + ", ".join(format_value(v) for v in value.items) + ")"
    if isinstance(value, ast.Reference):
        return value.variable + (f".{value.attr}" if value.attr else "")
    return _scalar(value.value)


def _scalar(value: ast.Scalar) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return _string(value)
    return repr(value)


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clauses(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _time(time: ast.TimeRange | None) -> str | None:
    if time is None:
        return None
    if time.last is not None:
        return f"LAST {time.last} {time.unit}"
    return f"START t'{time.start}' STOP t'{time.stop}'"


def _limit(n: int | None, word: str = "LIMIT") -> str | None:
    return f"{word} {n}" if n is not None else None


@singledispatch
def _command(command: object) -> str:
    raise TypeError(f"cannot format {type(command).__name__}")


@_command.register
def _(c: ast.Get) -> str:
    source = "FROM " + ", ".join(_path(s) for s in c.sources) if c.sources else None
    where = format_where(c.where) if c.where else None
    return _clauses(f"GET {c.entity_type}", source, where, _time(c.time), _limit(c.limit))


@_command.register
def _(c: ast.Find) -> str:
    word = (" OF" if c.relation in ("PARENT", "CHILD") else " BY") if c.reversed else ""
    head = f"FIND {c.entity_type} {c.relation}{word} {c.variable}"
    where = format_where(c.where) if c.where else None
    return _clauses(head, where, _time(c.time), _limit(c.limit))


@_command.register
def _(c: ast.Group) -> str:
    keys = ", ".join(
        f"BIN({k.attr}, {k.bin_size}{' ' + k.bin_unit if k.bin_unit else ''})"
        if k.bin_size is not None else k.attr
        for k in c.keys
    )  # fmt: skip
    aggs = ", ".join(f"{a.func}({a.attr})" + (f" AS {a.alias}" if a.alias else "") for a in c.aggs)
    return _clauses(f"GROUP {c.variable} BY {keys}", f"WITH {aggs}" if aggs else None)


@_command.register
def _(c: ast.Join) -> str:
    by = f"BY {c.left_attr}, {c.right_attr}" if c.left_attr else None
    return _clauses(f"JOIN {c.left}, {c.right}", by)


@_command.register
def _(c: ast.Load) -> str:
    return _clauses(f"LOAD {_path(c.path)}", f"AS {c.entity_type}" if c.entity_type else None)


@_command.register
def _(c: ast.New) -> str:
    if c.strings:
        items = [json.dumps(row[0][1]) for row in c.rows]
    else:
        items = ["{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in row) + "}"
                 for row in c.rows]  # fmt: skip
    return _clauses("NEW", c.entity_type, "[" + ", ".join(items) + "]")


@_command.register
def _(c: ast.Sort) -> str:
    return _clauses(f"SORT {c.variable} BY {c.attr}", c.direction)


@_command.register
def _(c: ast.Copy) -> str:
    return f"COPY {c.variable}"


@_command.register
def _(c: ast.Merge) -> str:
    return " + ".join(c.variables)


@_command.register
def _(c: ast.VarExpr) -> str:
    head = f"{c.transform}({c.variable})" if c.transform else c.variable
    return _clauses(
        head,
        format_where(c.where) if c.where else None,
        "ATTR " + ", ".join(c.attrs) if c.attrs else None,
        _clauses(f"SORT BY {c.sort}", c.direction) if c.sort else None,
        _limit(c.limit),
        _limit(c.offset, "OFFSET"),
    )


@_command.register
def _(c: ast.Apply) -> str:
    args = ", ".join(f"{k}={format_value(v)}" for k, v in c.args)
    return _clauses(
        f"APPLY {_path(c.uri)} ON {', '.join(c.variables)}", f"WITH {args}" if args else None
    )


@_command.register
def _(c: ast.Disp) -> str:
    return "DISP " + _command(c.expr)


@_command.register
def _(c: ast.Info) -> str:
    return f"INFO {c.variable}"


@_command.register
def _(c: ast.Save) -> str:
    return f"SAVE {c.variable} TO {_path(c.path)}"


@_command.register
def _(c: ast.Describe) -> str:
    return f"DESCRIBE {c.variable}.{c.attr}"


@_command.register
def _(c: ast.Explain) -> str:
    return f"EXPLAIN {c.variable}"


def _path(path: str) -> str:
    """A path as the grammar's PATH token takes it: bare when it can be, quoted otherwise."""
    bare = all(ch.isalnum() or ch in "_./~:-+" for ch in path) and path[:1] not in "'\""
    return path if bare and path else f"'{path}'"
