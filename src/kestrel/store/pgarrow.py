"""Arrow tables in and out of PostgreSQL without a Python object per row.

Why CSV over COPY: Arrow's C++ CSV writer and reader do the per-value work, so a batch of
100,000 events crosses into PostgreSQL as one byte stream (``COPY ... FROM STDIN``) and comes
back the same way (``COPY (SELECT ...) TO STDOUT``). PostgreSQL's CSV format tells NULL
(unquoted empty) from the empty string (``""``), and Arrow writes strings quoted, so no value
changes on the way. Results of ad-hoc queries (small by nature) go through the cursor instead,
typed from the result's column types so that an empty result still has its schema.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

# PostgreSQL type oid → Arrow type, for results read through the cursor.
OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    17: pa.binary(),
    18: pa.string(),
    19: pa.string(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    25: pa.string(),
    114: pa.string(),
    700: pa.float32(),
    701: pa.float64(),
    1042: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1700: pa.float64(),
    2950: pa.string(),
    3802: pa.string(),
}

_ARROW_SQL: dict[pa.DataType, str] = {
    pa.string(): "TEXT",
    pa.large_string(): "TEXT",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "SMALLINT",
    pa.int8(): "SMALLINT",
    pa.uint32(): "BIGINT",
    pa.float64(): "DOUBLE PRECISION",
    pa.float32(): "REAL",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BYTEA",
    pa.date32(): "DATE",
}


def sql_type(t: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type; nested types are kept as JSON text."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return _ARROW_SQL.get(t, "TEXT")


def create_sql(name: str, schema: pa.Schema, temp: bool = False) -> str:
    """CREATE TABLE for an Arrow schema (``register`` makes temporary tables with it)."""
    cols = ", ".join(f'"{f.name}" {sql_type(f.type)}' for f in schema)
    return f'CREATE {"TEMP " if temp else ""}TABLE "{name}" ({cols})'


def to_csv(table: pa.Table) -> bytes:
    """``table`` as CSV bytes for ``COPY ... (FORMAT csv)``; nested columns as JSON text."""
    buf = io.BytesIO()
    pacsv.write_csv(_flat(table), buf, pacsv.WriteOptions(include_header=False))
    return buf.getvalue()


def from_csv(data: bytes, schema: pa.Schema) -> pa.Table:
    """CSV from ``COPY ... TO STDOUT (FORMAT csv)`` read back with ``schema``."""
    if not data:
        return schema.empty_table()
    opts = pacsv.ConvertOptions(
        column_types=schema,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        timestamp_parsers=["%Y-%m-%d %H:%M:%S%z", pacsv.ISO8601],
    )
    read = pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    return pacsv.read_csv(io.BytesIO(data), read, parse, opts).cast(schema)


def rows_table(names: Sequence[str], oids: Sequence[int], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Cursor rows as an Arrow table, typed by the result columns' oids where known."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [_array(list(col), OID_TYPES.get(oid)) for col, oid in zip(columns, oids, strict=True)]
    return pa.table(dict(zip(_unique(names), arrays, strict=True)))


def _array(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    if kind is not None and pa.types.is_floating(kind):
        values = [None if v is None else float(v) for v in values]  # NUMERIC comes as Decimal
    if kind is not None and pa.types.is_string(kind):
        values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
    return pa.array(values, kind) if kind is not None else pa.array(values)


def _unique(names: Sequence[str]) -> list[str]:
    """Column names made unique (``SELECT a.x, b.x`` has two ``x``; Arrow keeps both, but a
    dict cannot)."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n] - 1}")
    return out


def _flat(table: pa.Table) -> pa.Table:
    """Nested columns as JSON text and binary ones as PostgreSQL hex, which CSV can carry."""
    for i, f in enumerate(table.schema):
        if pa.types.is_nested(f.type):
            text = [None if v is None else json.dumps(v, default=str) for v in table[i].to_pylist()]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
        elif pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            hexed = [None if v is None else "\\x" + v.hex() for v in table[i].to_pylist()]
            table = table.set_column(i, f.name, pa.array(hexed, pa.string()))
    return table
