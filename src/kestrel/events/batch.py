"""Building schema-conformant batches from the columns a reader filled.

Readers collect plain Python lists per column (the cheapest thing to append to) and hand
them over once per batch; everything the reader did not fill becomes a null column. Times
arrive as ISO-8601 strings and are parsed here in one vectorized cast.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from itertools import accumulate
from typing import Any, TypeAlias

import pyarrow as pa

from kestrel.events.schema import COLUMN_TYPES, SCHEMA

Batch: TypeAlias = pa.Table
"""A batch of normalized events: a `pyarrow.Table` with exactly `SCHEMA`."""

_TS = pa.timestamp("us", tz="UTC")


@cache
def empty_batch() -> Batch:
    """A batch with the schema and no rows. One table, made once: a table is immutable, and
    making it costs ~1 ms (86 columns), which every intake request paid twice (the default
    batch of a chunk and of a parse), ~2 us per event of a 1,000-event request."""
    return SCHEMA.empty_table()


@lru_cache(maxsize=512)
def _nulls(n: int, column: str) -> pa.Array:
    """An all-null column (immutable, so shared): a batch has ~70 of them, and making them
    anew took ~0.3 ms of each 1,000-row batch."""
    return pa.nulls(n, COLUMN_TYPES[column])


def make_batch(columns: Mapping[str, Sequence[Any] | pa.Array], n: int) -> Batch:
    """Assemble a batch of ``n`` rows from the columns given; the rest are null.

    Raises:
        KeyError: a column name that is not in the schema (a reader bug, not bad data).
    """
    arrays: list[pa.Array] = []
    for field in SCHEMA:
        values = columns.get(field.name)
        if values is None:
            arrays.append(_nulls(n, field.name))
        elif isinstance(values, pa.Array):
            arrays.append(values if values.type == field.type else values.cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    unknown = set(columns) - set(COLUMN_TYPES)
    if unknown:
        raise KeyError(f"not schema columns: {sorted(unknown)}")
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def utf8_column(values: Sequence[bytes]) -> pa.Array:
    """A string array straight from UTF-8 byte strings: one join and one offsets buffer,
    instead of decoding each value to a Python str first (the raw record is most of a
    row's bytes, so this is the largest copy a reader makes).

    >>> utf8_column([b'{"a":1}', b"", "é".encode()]).to_pylist()
    ['{"a":1}', '', 'é']
    """
    lengths = array("q", accumulate(map(len, values), initial=0))
    if lengths[-1] >= 2**31:  # past int32 offsets: let Arrow pick the layout, then cast
        return pa.array([v.decode("utf-8") for v in values], pa.large_string()).cast(pa.string())
    offsets = pa.py_buffer(array("i", lengths))
    data = pa.py_buffer(b"".join(values))
    out = pa.Array.from_buffers(pa.string(), len(values), [None, offsets, data])
    out.validate(full=True)  # UTF-8 checked once per column, in C
    return out


def parse_times(values: Sequence[str | None]) -> tuple[pa.Array, list[int]]:
    """Parse ISO-8601 strings (with a zone offset or ``Z``) to UTC timestamps.

    Returns the array and the indices of values that could not be parsed (null in the array),
    so the caller can reject those records instead of storing them with no time.
    """
    strings = pa.array(values, type=pa.string())
    try:
        return strings.cast(_TS), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed: list[datetime | None] = []
    bad: list[int] = []
    for i, value in enumerate(values):
        parsed.append(_parse_one(value))
        if parsed[-1] is None:
            bad.append(i)
    return pa.array(parsed, type=_TS), bad


def _parse_one(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # readers add the zone they know; none left means UTC
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
