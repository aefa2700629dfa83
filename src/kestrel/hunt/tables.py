"""Variables in and out of files and Python rows: LOAD, SAVE, NEW and analytics results.

Rows that arrive from outside the store (a CSV of IoCs, a Kestrel 1.x export, an analytics'
DataFrame) get the same shape as a GET result: columns renamed to the entity type's
canonical attributes where an alias is known (``binary_ref.name`` → ``name``), and an
``_key`` computed with the type's identity expression — so FIND, JOIN and ``pid IN v.pid``
work on them unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from kestrel.errors import HuntError
from kestrel.hunt.entities import EntityType

_HIDDEN = ("_key", "_order")


def with_identity(etype: EntityType, staged: str, columns: Sequence[str]) -> exp.Select:
    """``SELECT key AS _key, <columns as canonical names> FROM staged``."""
    renamed = _canonical_names(etype, columns)

    def col(attr: str) -> exp.Expr:
        source = next((c for c, name in renamed.items() if name == attr), None)
        return exp.column(source, quoted=True) if source else exp.null()

    keep = [exp.column(c, quoted=True).as_(n, quoted=True) for c, n in renamed.items()
            if c not in _HIDDEN]  # fmt: skip
    return exp.select(etype.key(col).as_("_key"), *keep).from_(exp.to_table(staged))


def _canonical_names(etype: EntityType, columns: Sequence[str]) -> dict[str, str]:
    """Source column → name in the variable (canonical when known and not taken)."""
    out: dict[str, str] = {}
    taken = set(columns)
    for column in columns:
        canonical = etype.canonical(column)
        if canonical and canonical != column and canonical not in taken:
            out[column] = canonical
            taken.add(canonical)
        else:
            out[column] = column
    return out


def read_table(path: Path) -> pa.Table:
    """A CSV, Parquet (optionally .gz) or JSON / JSON-lines file as an Arrow table."""
    name = path.name.lower()
    if not path.is_file():
        raise HuntError(f"cannot LOAD {path}: no such file")
    if name.endswith((".parquet", ".parquet.gz")):
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if name.endswith(".csv"):
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return rows_table(_json_rows(path))
    raise HuntError(f"cannot LOAD {path}: use .csv, .parquet or .json / .jsonl")


def _json_rows(path: Path) -> list[Any]:
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    return data if isinstance(data, list) else [data]


def rows_table(rows: Sequence[Any], initial: str = "name") -> pa.Table:
    """JSON-like rows (objects, or bare strings for the type's initial attribute)."""
    dicts = [r if isinstance(r, dict) else {initial: r} for r in rows]
    names = list(dict.fromkeys(k for r in dicts for k in r))
    columns = {n: _array([_cell(r.get(n)) for r in dicts]) for n in names}
    return pa.table(columns) if names else pa.table({initial: pa.array([], pa.string())})


def _array(values: list[Any]) -> pa.Array:
    """The values as Arrow infers them. A column of one plain type (strings, int64 integers,
    floats or booleans, and nulls) is given the type inference finds, without inference:
    Arrow's Python-object inference imports ``dateutil`` (and ``six``, ``calendar``,
    ``locale``) on its first use, ≈ 5 ms of a ``NEW`` hunt's start-up (the hello world)."""
    kinds = {type(v) for v in values if v is not None}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind in _PLAIN_TYPES:  # an int beyond int64 overflows here as it does in inference
        return pa.array(values, _PLAIN_TYPES[kind])
    return pa.array(values)


_PLAIN_TYPES: dict[type, pa.DataType] = {
    str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()
}  # fmt: skip


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def entity_type_of(table: pa.Table, given: str | None) -> tuple[str, pa.Table]:
    """The entity type: ``AS type``, else the table's ``type`` column (which is dropped)."""
    if "type" in table.column_names:
        types = set(table.column("type").to_pylist())
        table = table.drop_columns(["type"])
        if given is None and len(types) == 1:
            return str(types.pop()), table
    if given is None:
        raise HuntError("the data has no single 'type'; say which with AS <entity type>")
    return given, table


def write_table(table: pa.Table, path: Path) -> None:
    """SAVE: the format follows the suffix (.parquet, .parquet.gz, .csv, .json, .jsonl)."""
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif name.endswith(".parquet.gz"):
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="gzip")
    elif name.endswith(".csv"):
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    elif name.endswith((".json", ".jsonl")):
        rows = table.to_pylist()
        lines = (json.dumps(r, default=str) for r in rows)
        text = "\n".join(lines) if name.endswith(".jsonl") else json.dumps(rows, default=str)
        path.write_text(text)
    else:
        raise HuntError(f"cannot SAVE to {path}: use .parquet, .parquet.gz, .csv, .json or .jsonl")
