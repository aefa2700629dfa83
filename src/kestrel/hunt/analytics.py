"""APPLY: the Python analytics interface.

An analytics is a Python function. ``APPLY python://NAME ON v1, v2 WITH k=v`` calls it with
one Polars DataFrame per variable (every attribute, plus the ``_key`` identity column) and
the WITH arguments as keyword arguments (``k=v.attr`` passes the list of that attribute's
values). It returns any of: nothing; DataFrames (one per input variable, in order: each
replaces its variable, e.g. with a new score column); a display (str → text, `Display` →
as is); or a tuple of those. NAME is an entry point in group ``kestrel.analytics``, a dotted
``module.function``, or ``path/to/file.py:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from kestrel.errors import HuntError, HuntNameError
from kestrel.hunt import ast
from kestrel.hunt.display import Display, TableDisplay, TextDisplay
from kestrel.hunt.session import Session

Analytics = Callable[..., Any]


def find_analytics(uri: str, span: ast.Span = ast.NOWHERE) -> Analytics:
    """The function ``uri`` names (see the module docstring for the forms)."""
    from kestrel.plugins import load

    name = uri.removeprefix("python://")
    registered: dict[str, Analytics] = load("analytics", {})
    if name in registered:
        return registered[name]
    path, colon, function = name.rpartition(":")
    if colon and path.endswith(".py"):
        return _from_file(Path(path), function, span)
    module, dot, function = name.rpartition(".")
    if dot:
        try:
            return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            pass
    known = ", ".join(sorted(registered)) or "none registered"
    raise HuntNameError(f"no analytics {uri!r}", span.line, span.col, f"known: {known}")


def _from_file(path: Path, function: str, span: ast.Span) -> Analytics:
    spec = importlib.util.spec_from_file_location(f"kestrel_analytics_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise HuntNameError(f"no analytics file {path}", span.line, span.col)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise HuntNameError(f"{path} has no function {function!r}", span.line, span.col)
    return getattr(module, function)  # type: ignore[no-any-return]


def run_analytics(session: Session, c: ast.Apply) -> list[Display]:
    """Run the analytics and apply what it returns."""
    import polars as pl

    function = find_analytics(c.uri, c.span)
    infos = [session.variable_info(v, c.span) for v in c.variables]
    frames = [pl.from_arrow(session.store.query(f'SELECT * FROM "{i.table}"')) for i in infos]
    kwargs = {k: _argument(session, v) for k, v in c.args}
    try:
        result = function(*frames, **kwargs)
    except Exception as exc:  # an analytics bug is reported, not a traceback
        raise HuntError(f"analytics {c.uri} failed: {type(exc).__name__}: {exc}",
                        c.span.line, c.span.col) from exc  # fmt: skip
    return _apply_result(session, c, result)


def _argument(session: Session, value: ast.Value) -> Any:
    if isinstance(value, ast.ListValue):
        out: list[Any] = []
        for item in value.items:
            got = _argument(session, item)
            out.extend(got if isinstance(got, list) else [got])
        return out
    if isinstance(value, ast.Reference):
        if session.is_variable(value.variable) and value.attr:
            return session.variable(value.variable).column(value.attr).to_pylist()
        return value.variable + (f".{value.attr}" if value.attr else "")
    return value.value


def _apply_result(session: Session, c: ast.Apply, result: Any) -> list[Display]:
    import polars as pl

    items = result if isinstance(result, tuple) else (result,)
    displays: list[Display] = []
    updates = iter(c.variables)
    for item in items:
        if isinstance(item, pl.DataFrame):
            name = next(updates, None)
            if name is None:
                raise HuntError(f"analytics {c.uri} returned more tables than variables")
            _update(session, name, item.to_arrow(), c.span)
        elif isinstance(item, TableDisplay | TextDisplay):
            displays.append(item)
        elif isinstance(item, str):
            displays.append(
                TextDisplay(
                    c.uri, item, "text/html" if item.lstrip().startswith("<") else "text/plain"
                )
            )
        elif item is not None:
            raise HuntError(
                f"analytics {c.uri} returned {type(item).__name__}; see docs/hunting.md"
            )
    return displays


def _update(session: Session, name: str, table: pa.Table, span: ast.Span) -> None:
    var = session.variable_info(name, span)
    statement = ast.Statement(ast.Copy(name, span), name, span)
    if "_key" in table.column_names:
        table = table.drop_columns(["_key"])
    session._assign_table(statement, table, var.entity_type, var.source)
