"""One handler per command: compile, materialize or query, and say what to show.

The table at the bottom (`HANDLERS`) is the command registry: which AST node runs how.
Each handler is small because the work is in the compiler (SQL) and the store (engine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
from sqlglot import exp

from kestrel.errors import HuntError
from kestrel.hunt import ast
from kestrel.hunt.compile import entity_type
from kestrel.hunt.display import Display, TableDisplay, TextDisplay
from kestrel.hunt.session import Session, resolve_path, statement_text


def get(s: Session, st: ast.Statement) -> list[Display]:
    """GET: from the store, files, or (``FROM var``) another variable."""
    c = st.command
    assert isinstance(c, ast.Get)
    etype = entity_type(c.entity_type, c.span).name
    if len(c.sources) == 1 and s.is_variable(c.sources[0]):
        return _get_from_variable(s, st, c, etype)
    if etype == "finding":
        return _get_findings(s, st, c)
    names = c.sources or s._last_source
    source = s._sources.table(names)
    s._last_source = names
    s._current_source = source
    return s._assign(st, s._compiler().get(c, source), etype, source)


def _get_findings(s: Session, st: ast.Statement, c: ast.Get) -> list[Display]:
    """GET finding: the store's findings (`kestrel.hunt.findings`); their evidence is the
    store's events, so FIND from them reads the events table."""
    from kestrel.store.findings import ensure_tables

    if c.sources:
        raise HuntError("findings are in the store: GET finding takes no FROM source",
                        c.span.line, c.span.col)  # fmt: skip
    ensure_tables(s.store)
    return s._assign(st, s._compiler().get(c, "events"), "finding", "events")


def _get_from_variable(s: Session, st: ast.Statement, c: ast.Get, etype: str) -> list[Display]:
    var = s.variable_info(c.sources[0], c.span)
    if var.entity_type != etype:
        raise HuntError(f"{var.name} holds {var.entity_type}, not {etype}", c.span.line, c.span.col)
    query = s._compiler().filter(ast.VarExpr(var.name, where=c.where, limit=c.limit, span=c.span))
    return s._assign(st, query, etype, var.source)


def find(s: Session, st: ast.Statement) -> list[Display]:
    """FIND: entities related to a variable's entities."""
    c = st.command
    assert isinstance(c, ast.Find)
    var = s.variable_info(c.variable, c.span)
    s._current_source = var.source
    etype = entity_type(c.entity_type, c.span).name
    if etype == "finding":
        from kestrel.store.findings import ensure_tables

        ensure_tables(s.store)
    return s._assign(st, s._compiler().find(c), etype, var.source)


def assign(s: Session, st: ast.Statement) -> list[Display]:
    """``v2 = v [WHERE …] [ATTR …] [SORT BY …] [LIMIT …]`` and TIMESTAMPED(v)."""
    c = st.command
    assert isinstance(c, ast.VarExpr)
    var = s.variable_info(c.variable, c.span)
    return s._assign(st, s._compiler().filter(c), var.entity_type, var.source)


def _same_type(
    build: Callable[[Session, Any], exp.Select], variable: Callable[[Any], str]
) -> Callable[[Session, ast.Statement], list[Display]]:
    def handler(s: Session, st: ast.Statement) -> list[Display]:
        var = s.variable_info(variable(st.command), st.command.span)
        return s._assign(st, build(s, st.command), var.entity_type, var.source)

    return handler


def load(s: Session, st: ast.Statement) -> list[Display]:
    """LOAD path [AS type]."""
    from kestrel.hunt.tables import entity_type_of, read_table

    c = st.command
    assert isinstance(c, ast.Load)
    etype, table = entity_type_of(read_table(resolve_path(c.path)), c.entity_type)
    return s._assign_table(st, table, entity_type(etype, c.span).name)


def new(s: Session, st: ast.Statement) -> list[Display]:
    """NEW [type] [...]: entities given inline."""
    from kestrel.hunt.tables import entity_type_of, rows_table

    c = st.command
    assert isinstance(c, ast.New)
    initial = entity_type(c.entity_type, c.span).initial if c.entity_type else "name"
    rows = [row[0][1] if c.strings else dict(row) for row in c.rows]
    etype, table = entity_type_of(rows_table(rows, initial), c.entity_type)
    return s._assign_table(st, table, entity_type(etype, c.span).name)


def disp(s: Session, st: ast.Statement) -> list[Display]:
    """DISP: a table of the variable's entities."""
    c = st.command
    assert isinstance(c, ast.Disp)
    query = s._compiler().disp(c.expr, s.stored(c.expr.variable))
    if not s.lazy_display:
        return [TableDisplay(c.expr.variable, s._query(query))]
    from kestrel.hunt.rows import QueryRows

    return [TableDisplay(c.expr.variable, QueryRows(s.store, query))]


def info(s: Session, st: ast.Statement) -> list[Display]:
    """INFO: type, counts, attributes, source and how the variable was made."""
    c = st.command
    assert isinstance(c, ast.Info)
    var = s.variable_info(c.variable, c.span)
    count = s.store.query(f'SELECT count(*) AS n FROM "{var.table}"').column("n")[0].as_py()
    source = "store" if var.source == "events" else var.source
    rows = [("entity type", var.entity_type), ("entities", str(count)),
            ("attributes", ", ".join(var.visible)), ("source", source)]  # fmt: skip
    table = pa.table({"property": [r[0] for r in rows], "value": [r[1] for r in rows]})
    return [TableDisplay(f"INFO {var.name}", table)]


def describe(s: Session, st: ast.Statement) -> list[Display]:
    """DESCRIBE v.attr: count / mean / min / max, or count / unique / top / freq (in SQL)."""
    c = st.command
    assert isinstance(c, ast.Describe)
    var = s.variable_info(c.variable, c.span)
    col = f'"{s._compiler()._var_attr(var, c.attr, c.span)}"'
    table = f'"{var.table}"'
    kind = s.store.query(f"SELECT {col} AS v FROM {table} LIMIT 0").schema.field("v").type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        sql = (f"SELECT count({col}) AS count, avg({col}) AS mean, min({col}) AS min, "
               f"max({col}) AS max FROM {table}")  # fmt: skip
    else:
        sql = (f"SELECT (SELECT count({col}) FROM {table}) AS count, (SELECT count(DISTINCT {col}) "
               f"FROM {table}) AS unique, {col} AS top, count(*) AS freq FROM {table} WHERE {col} "
               f"IS NOT NULL GROUP BY {col} ORDER BY freq DESC, top LIMIT 1")  # fmt: skip
    row = (s.store.query(sql).to_pylist() or [{"count": 0}])[0]
    stats = pa.table({"statistic": list(row), "value": [str(v) for v in row.values()]})
    return [TableDisplay(f"DESCRIBE {var.name}.{c.attr}", stats)]


def explain(s: Session, st: ast.Statement) -> list[Display]:
    """EXPLAIN v: the SQL that made the variable, in the store's dialect."""
    import sqlglot

    c = st.command
    assert isinstance(c, ast.Explain)
    var = s.variable_info(c.variable, c.span)
    pretty = sqlglot.transpile(var.sql, read=s.store.dialect, write=s.store.dialect, pretty=True)
    return [TextDisplay(f"EXPLAIN {var.name}", pretty[0], "text/x-sql")]


def save(s: Session, st: ast.Statement) -> list[Display]:
    """SAVE v TO path: the attributes the hunter sees, in the format the suffix names."""
    from kestrel.hunt.tables import write_table

    c = st.command
    assert isinstance(c, ast.Save)
    var = s.variable_info(c.variable, c.span)
    table = s.variable(c.variable)
    table = table.append_column("type", pa.array([var.entity_type] * table.num_rows, pa.string()))
    write_table(table, resolve_path(c.path))
    return []


def apply(s: Session, st: ast.Statement) -> list[Display]:
    """APPLY python://… ON vars WITH k=v: run an analytics, update variables, show output."""
    from kestrel.hunt.analytics import run_analytics

    c = st.command
    assert isinstance(c, ast.Apply)
    return run_analytics(s, c)


HANDLERS: dict[type[Any], Callable[[Session, ast.Statement], list[Display]]] = {
    ast.Get: get,
    ast.Find: find,
    ast.VarExpr: assign,
    ast.Merge: _same_type(lambda s, c: s._compiler().merge(c), lambda c: c.variables[0]),
    ast.Copy: _same_type(lambda s, c: s._compiler().copy(c.variable, c.span), lambda c: c.variable),
    ast.Sort: _same_type(lambda s, c: s._compiler().sort(c), lambda c: c.variable),
    ast.Group: _same_type(lambda s, c: s._compiler().group(c), lambda c: c.variable),
    ast.Join: _same_type(lambda s, c: s._compiler().join(c), lambda c: c.left),
    ast.Load: load,
    ast.New: new,
    ast.Disp: disp,
    ast.Info: info,
    ast.Describe: describe,
    ast.Explain: explain,
    ast.Save: save,
    ast.Apply: apply,
}

__all__ = ["HANDLERS", "statement_text"]
