"""A hunt session: variables as temporary tables in the store, statements run one by one.

The session parses a hunt, asks the compiler for one SELECT per command and materializes
each variable as ``CREATE TEMP TABLE … AS SELECT …`` in the store, so the whole hunt runs in
the engine and a variable costs one table. Inspection commands (DISP, INFO, DESCRIBE,
EXPLAIN) return display objects; nothing here prints. Errors are `HuntError`s with the
statement's line and column.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
from sqlglot import exp

from kestrel.errors import HuntError, HuntNameError
from kestrel.hunt import ast
from kestrel.hunt.compile import Compiler, VarInfo, entity_type
from kestrel.hunt.display import Display, TableDisplay, TextDisplay
from kestrel.hunt.duckdb_sql import sql
from kestrel.hunt.entities import Role
from kestrel.hunt.entity_sql import COLUMNS, KEYS
from kestrel.hunt.format import format_statement
from kestrel.hunt.parser import parse
from kestrel.hunt.relations_store import Relations
from kestrel.hunt.results import MIN_EVENTS, StoredResults, enabled, reads_events_only
from kestrel.hunt.sources import SourceTables
from kestrel.store import Store

_SESSIONS = itertools.count(1)


class Session:
    """Runs hunts over ``store``; variables live as long as the session.

    Args:
        store: where the events are (and where variables are kept); an empty in-memory
            DuckDB store when omitted.
        ignore_case: string comparisons (=, !=, IN, LIKE, MATCHES) ignore case.
        now: the time ``LAST n DAYS`` counts back from (tests pin it).
        lazy_display: DISP returns rows still in the engine (a page or streamed JSON is
            read when shown, until the session closes) instead of an Arrow table.
        stored_results: a DISP repeated over unchanged events reads its entities from a
            table written at the second DISP (`kestrel.hunt.results`, DuckDB stores of
            ``stored_min_events`` events or more); ``KESTREL_HUNT_STORED_RESULTS=0`` or
            False turns it off.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        ignore_case: bool = False,
        now: datetime | None = None,
        lazy_display: bool = False,
        stored_results: bool = True,
        stored_min_events: int = MIN_EVENTS,
    ) -> None:
        if store is None:
            from kestrel.store import DuckDBStore

            store = DuckDBStore(":memory:")
        self.store = store
        self.ignore_case = ignore_case
        self.now = now
        self.lazy_display = lazy_display
        self._relations = Relations(store)
        self._vars: dict[str, VarInfo] = {}
        self._prefix = f"_hunt{next(_SESSIONS)}_"
        self._sources = SourceTables(store, self._prefix)
        self._tables = itertools.count(1)
        self._last_source: tuple[str, ...] = ("store",)
        self._sigma_tables: dict[tuple[str, str], str] = {}
        self._filled: dict[tuple[str, str, str], frozenset[str]] = {}
        self._results = (
            StoredResults(store, stored_min_events) if stored_results and enabled() else None
        )

    # -- public surface -----------------------------------------------------------------------

    def execute(self, text: str | ast.Hunt) -> list[Display]:
        """Run a hunt-flow (text, or a hunt already parsed); returns what its DISP / INFO /
        EXPLAIN / APPLY … statements show."""
        out: list[Display] = []
        hunt = parse(text) if isinstance(text, str) else text
        for statement in hunt.statements:
            out.extend(self.run(statement))
        return out

    def run(self, statement: ast.Statement) -> list[Display]:
        """Run one parsed statement."""
        handler = _HANDLERS.get(type(statement.command))
        if handler is None:
            raise HuntError(f"{type(statement.command).__name__} is not supported yet")
        try:
            return handler(self, statement)
        finally:
            self._relations.statement_done()

    def variable(self, name: str) -> pa.Table:
        """The entities of a variable, as DISP would show them (all attributes)."""
        return self._query(self._compiler().disp(ast.VarExpr(name)))

    def count(self, name: str) -> int:
        """How many entities (rows) a variable holds."""
        var = self.variable_info(name, ast.NOWHERE)
        return int(
            self.store.query(f'SELECT count(*) AS n FROM "{var.table}"').column("n")[0].as_py()
        )

    def info(self, name: str) -> VarInfo:
        """What the session knows about a variable."""
        return self.variable_info(name, ast.NOWHERE)

    @property
    def variables(self) -> dict[str, VarInfo]:
        """The variables defined so far."""
        return dict(self._vars)

    def close(self) -> None:
        """Drop the session's tables (the store itself stays open: it belongs to the caller)."""
        self._relations.close()
        self._vars.clear()
        self._sources.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- catalog (for the compiler) -----------------------------------------------------------

    def variable_info(self, name: str, span: ast.Span) -> VarInfo:
        """The variable ``name`` or HuntNameError with a "did you mean"."""
        if name in self._vars:
            return self._vars[name]
        close = difflib.get_close_matches(name, list(self._vars), n=1)
        hint = f"did you mean {close[0]}?" if close else ""
        raise HuntNameError(f"no variable {name!r}", span.line, span.col, hint)

    def is_variable(self, name: str) -> bool:
        """Whether ``name`` is a variable now."""
        return name in self._vars

    # -- helpers the command handlers share ---------------------------------------------------

    def _compiler(self) -> Compiler:
        return Compiler(_Catalog(self), self.store.dialect, self.now, self.ignore_case,
                        self._sigma, self._present)  # fmt: skip

    def _sql(self, query: exp.Expr) -> str:
        return sql(query, self.store.dialect)

    def _query(self, query: exp.Expr) -> pa.Table:
        return self.store.query(self._sql(query))

    def _assign(
        self,
        statement: ast.Statement,
        query: exp.Select,
        etype: str,
        source: str,
        stored: bool = False,
    ) -> list[Display]:
        """Make ``query`` the statement's target variable: a view (`relations_store`), or a
        table when ``stored`` (its rows come from Python and are gone afterwards)."""
        name = statement.target or "_"
        relation = f"{self._prefix}v{next(self._tables)}"
        sql = self._sql(query)
        (self._relations.table if stored else self._relations.view)(relation, sql)
        # an entity query says its columns; asking the engine plans the view (14-20 ms at 1M)
        columns = query.meta.get(COLUMNS) or self._relations.columns(relation)
        keys = query.meta.get(KEYS)
        events_only = (self._results is not None and not stored and source == "events"
                       and reads_events_only(query, columns))  # fmt: skip
        self._vars[name] = VarInfo(name, relation, etype, columns, source, sql, keys, events_only)
        return []

    def stored(self, name: str) -> VarInfo | None:
        """The variable as its stored result (`kestrel.hunt.results`) for a DISP of it: read
        from the stored table, already in order; None when the live query should run."""
        info = self._vars.get(name)
        if info is None or not info.events_only or self._results is None:
            return None
        table = self._results.table_for(info.sql)
        if table is None:
            return None
        return dataclasses.replace(info, table=table, keys=None, ordered=True)

    def _assign_table(
        self, statement: ast.Statement, table: pa.Table, etype: str, source: str = "events"
    ) -> list[Display]:
        """Materialize rows made in Python (NEW, LOAD, APPLY) as the target variable."""
        from kestrel.hunt.tables import with_identity

        staged = f"{self._prefix}in{next(self._tables)}"
        self.store.register(staged, table)
        try:
            query = with_identity(entity_type(etype, statement.span), staged, table.column_names)
            return self._assign(statement, query, etype, source, stored=True)
        finally:
            self.store.unregister(staged)

    def _present(self, source: str, role: Role) -> frozenset[str]:
        """The role's event columns with a value somewhere in ``source`` (one COUNT per
        column, once per session): GET and FIND skip aggregating the empty ones."""
        key = (source, role.name, ",".join(role.classes))
        if key not in self._filled:
            self._filled[key] = filled_columns(self.store, source, role)
        return self._filled[key]

    def _sigma(self, rule: str, span: ast.Span) -> exp.Select:
        from kestrel.hunt.sigma import matched_events

        source = self._current_source
        key = (rule, source)
        if key not in self._sigma_tables:
            name = f"{self._prefix}sigma{next(self._tables)}"
            matched_events(self.store, source, rule, name, span)
            self._sigma_tables[key] = name
        return exp.select("event_id").from_(exp.to_table(self._sigma_tables[key]))

    _current_source = "events"


class _Catalog:
    """The compiler's view of a session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def variable(self, name: str, span: ast.Span) -> VarInfo:
        info = self._session.variable_info(name, span)
        relation = self._session._relations.read(info.table)
        # once stored as a table, the variable's keys are read from it
        stored = dataclasses.replace(info, table=relation, keys=None)
        return info if relation == info.table else stored

    def is_variable(self, name: str) -> bool:
        return self._session.is_variable(name)


Handler = Callable[[Session, ast.Statement], list[Display]]


def _handlers() -> dict[type[Any], Handler]:
    from kestrel.hunt import commands

    return commands.HANDLERS


class _LazyHandlers(dict[type[Any], Handler]):
    """The command table, imported on first use (keeps `import kestrel.hunt` light)."""

    def get(self, key: type[Any], default: Any = None) -> Any:
        if not self:
            self.update(_handlers())
        return super().get(key, default)


_HANDLERS: dict[type[Any], Handler] = _LazyHandlers()


def filled_columns(store: Store, source: str, role: Role) -> frozenset[str]:
    """The role's columns that are not NULL in every row of ``source`` (of its classes).

    One ``EXISTS`` per column, not a COUNT: the engine stops at the first value, and an
    empty column's ``IS NOT NULL`` is answered from its NULL statistics (DuckDB prunes the
    row groups), so this costs milliseconds at a million events instead of a full scan
    (0.03 against 0.10-0.19 CPU-s per role)."""
    columns = sorted(set(role.columns.values()))
    row = store.query(filled_sql(source, role.classes, columns, store.dialect)).to_pylist()[0]
    return frozenset(c for c, filled in row.items() if filled)


def filled_sql(source: str, classes: Sequence[str], columns: Sequence[str], dialect: str) -> str:
    """`filled_columns`' query: ``SELECT EXISTS(SELECT 1 FROM source WHERE NOT "c" IS NULL
    AND "class" IN (…)) AS "c", …``. The table and the class test are written by sqlglot
    once and each column's probe around them as text: a role has up to twenty columns, and
    building and writing each probe as a tree was ≈ 15 ms of a GET's first compile. The
    text is sqlglot's, character for character (tests/hunt/test_session_sql.py)."""
    table = sql(exp.to_table(source, quoted=not source.isidentifier()), dialect)
    where = ""
    if classes:
        test = exp.column("class", quoted=True).isin(*(exp.Literal.string(c) for c in classes))
        where = f" AND {sql(test, dialect)}"

    def quoted(column: str) -> str:
        return '"' + column.replace('"', '""') + '"'

    probes = (f"EXISTS(SELECT 1 FROM {table} WHERE NOT {quoted(c)} IS NULL{where}) AS {quoted(c)}"
              for c in columns)  # fmt: skip
    return "SELECT " + ", ".join(probes)


def statement_text(statement: ast.Statement) -> str:
    """The statement in canonical form (INFO shows how a variable was made)."""
    return format_statement(statement)


def resolve_path(path: str) -> Path:
    """A SAVE / LOAD path: ``file://`` URIs and ``~`` are accepted."""
    from kestrel.hunt.sources import local_path

    return local_path(path)


__all__ = ["Display", "Session", "TableDisplay", "TextDisplay"]
