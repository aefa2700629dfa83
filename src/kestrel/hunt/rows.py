"""DISP rows left in the engine until they are shown: a page, a count, or JSON streamed.

A DISP over a million entities should cost what is shown, not a million Python objects: a
terminal table asks for its first rows (the LIMIT goes into the SQL), JSON output asks for
every row, and on DuckDB the engine writes each row's JSON itself (``to_json``) and hands
it over a batch at a time, so neither the rows nor the whole text sit in memory at once.
Other stores (PostgreSQL) fall back to one Arrow table written by Polars.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from kestrel.hunt.duckdb_sql import sql
from kestrel.store import Store

BATCH_ROWS = 65_536
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


class BatchStore(Protocol):
    """A store that can hand a result over a batch at a time (DuckDB)."""

    def query_batches(self, sql: str, rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
        """The rows of ``sql``, ``rows`` at a time."""
        ...


class QueryRows:
    """The rows of one SELECT over a live session's tables (valid until it closes)."""

    def __init__(self, store: Store, query: exp.Select) -> None:
        self._store = store
        self._query = query
        self._empty: pa.Table | None = None

    def table(self, limit: int | None = None) -> pa.Table:
        """All rows, or the first ``limit`` (pushed into the SQL). ``table(0)``, the schema,
        is asked once: showing JSON needs the column names and types, and planning the query
        over a GET's view costs 10-30 ms at a million events."""
        if limit == 0:
            if self._empty is None:
                self._empty = self._store.query(self._sql(_capped(self._query, 0)))
            return self._empty
        return self._store.query(self._sql(_capped(self._query, limit)))

    def count(self) -> int:
        """How many rows there are, counted by the engine."""
        sql = exp.select(exp.func("COUNT", exp.Star()).as_("n")).from_(self._query.subquery("d"))
        return int(self._store.query(self._sql(sql)).column("n")[0].as_py())

    def json_chunks(self) -> Iterator[bytes | memoryview]:
        """The rows as JSON objects separated by commas (no brackets), in pieces: a batch's
        text is handed on as Arrow joined it (a view of its buffer), not copied again."""
        batches = getattr(self._store, "query_batches", None)
        if batches is None or self._store.dialect != "duckdb":
            from kestrel.hunt.display import polars_rows

            yield polars_rows(self.table())
            return
        sql = self._sql(_as_json(self._query, self.table(0).schema))
        held: bytes | memoryview | None = None  # the text so far, each row's comma after it
        for batch in batches(sql, BATCH_ROWS):
            if batch.num_rows:
                if held is not None:
                    yield held
                held = _text(batch.column(0))
        if held is not None:
            yield held[:-1]  # the last row's comma

    def _sql(self, query: exp.Expr) -> str:
        return sql(query, self._store.dialect)


def _capped(query: exp.Select, limit: int | None) -> exp.Select:
    """``query`` with at most ``limit`` rows (keeping a smaller LIMIT it already has)."""
    if limit is None:
        return query
    given = query.args.get("limit")
    if given is not None and given.expression.is_int:
        limit = min(limit, int(given.expression.name))
    return query.copy().limit(limit)


def _as_json(query: exp.Select, schema: pa.Schema) -> exp.Select:
    """The rows of ``query``, in its order, as one column of JSON objects.

    The JSON is built *after* the ORDER BY, over the sorted subquery, so the sort moves the
    raw columns rather than each row's text (12 % less CPU for a million rows). DuckDB
    documents that a SELECT over a single subquery keeps that subquery's row order
    (duckdb.org/docs/sql/dialect/order_preservation)."""
    fields = []
    for field in schema:
        value: exp.Expr = exp.column(field.name, table="d", quoted=True)
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            # the UTC wall time from the stored microseconds: `make_timestamp(epoch_us(t))`
            # is arithmetic, `timezone('UTC', t)` goes through ICU (same text, 0.15 against
            # 0.24-0.35 CPU-s for a million times)
            micros = exp.Anonymous(this="epoch_us", expressions=[value])
            utc = exp.Anonymous(this="make_timestamp", expressions=[micros])
            value = exp.func("strftime", utc, exp.Literal.string(_TIME_FORMAT))
        key = exp.to_identifier(field.name, quoted=True)
        fields.append(exp.PropertyEQ(this=key, expression=value))
    row = exp.func("to_json", exp.Struct(expressions=fields))
    # each row's text ends with the comma that separates it from the next, so a batch's
    # rows are shown as Arrow holds them: one run of bytes, joined by no one (`_text`)
    text = exp.DPipe(this=exp.cast(row, "text"), expression=exp.Literal.string(","))
    return exp.select(text.as_("j")).from_(query.subquery("d"))


def _text(column: pa.ChunkedArray | pa.Array) -> bytes | memoryview:
    """A column of strings (no nulls) as one text: for a plain Arrow string array, a view
    of its data buffer from its first row's start to its last row's end (the offsets only
    grow, so that run is the rows in order, nothing between them); else the rows joined."""
    if isinstance(column, pa.StringArray | pa.LargeStringArray) and not column.null_count:
        _, offsets, data = column.buffers()
        if offsets is None or data is None:
            return b""
        bounds = memoryview(offsets).cast("i" if isinstance(column, pa.StringArray) else "q")
        first = column.offset
        return memoryview(data)[bounds[first] : bounds[first + len(column)]]
    strings = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(strings) <= PYTHON_JOIN_ROWS:
        return "".join(strings.to_pylist()).encode()
    return _joined_by(strings, "")


# Up to this many rows a batch's JSON strings are joined by Python: importing
# pyarrow.compute costs more (≈ 0.05 CPU-s) than joining 20,000 strings (≈ 0.01).
PYTHON_JOIN_ROWS = 20_000


def _joined(column: pa.ChunkedArray | pa.Array) -> bytes | memoryview:
    """The column's strings joined by commas: by Python for a small batch, else by Arrow (no
    Python object per row; the joined text is returned as a view of Arrow's buffer)."""
    strings = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(strings) <= PYTHON_JOIN_ROWS:
        return ",".join(strings.to_pylist()).encode()
    return _joined_by(strings, ",")


def _joined_by(strings: pa.Array, separator: str) -> memoryview:
    """The strings joined by Arrow, as a view of the joined text's buffer."""
    import pyarrow.compute as pc

    offsets = pa.array([0, len(strings)], pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, strings), separator)
    return memoryview(joined[0].as_buffer())
