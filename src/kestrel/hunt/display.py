"""What a hunt shows: tables (DISP, INFO, DESCRIBE), text (EXPLAIN) and analytics output.

Display objects are plain data; the CLI renders them with Rich or as JSON, a notebook or the
API could render them as HTML. Nothing here prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO, Protocol

import pyarrow as pa


class Rows(Protocol):
    """Rows still in the engine (a DISP in a live session: `kestrel.hunt.rows.QueryRows`)."""

    def table(self, limit: int | None = None) -> pa.Table:
        """All rows, or the first ``limit``."""
        ...

    def count(self) -> int:
        """How many rows."""
        ...

    def json_chunks(self) -> Iterator[bytes | memoryview]:
        """The rows as comma-separated JSON objects, in pieces."""
        ...


@dataclass(frozen=True)
class TableDisplay:
    """Rows to show (DISP, INFO, DESCRIBE): an Arrow table, or `Rows` left in the engine
    so that showing a page or streaming JSON never holds every row in Python."""

    title: str
    rows: pa.Table | Rows

    @cached_property
    def table(self) -> pa.Table:
        """Every row as an Arrow table (runs the query once when the rows are lazy)."""
        return self.rows if isinstance(self.rows, pa.Table) else self.rows.table()

    def head(self, n: int) -> tuple[pa.Table, int]:
        """The first ``n`` rows and how many there are in all."""
        if isinstance(self.rows, pa.Table):
            return self.rows.slice(0, n), self.rows.num_rows
        first = self.rows.table(n)
        return first, first.num_rows if first.num_rows < n else self.rows.count()

    def as_json(self) -> dict[str, Any]:
        """``{"title", "columns", "rows"}``: rows as objects, times as ISO strings."""
        return json.loads(self.json_text())  # type: ignore[no-any-return]

    def json_text(self) -> str:
        """`as_json` as text."""
        return b"".join(self.json_chunks()).decode()

    def json_chunks(self) -> Iterator[bytes | memoryview]:
        """`as_json` in pieces: rows written by the engine or Polars (Rust), never a Python
        object per value, so a DISP of every entity is not bound by the interpreter."""
        rows = self.rows
        columns = rows.column_names if isinstance(rows, pa.Table) else rows.table(0).column_names
        yield json.dumps({"title": self.title, "columns": columns})[:-1].encode()
        yield b', "rows": ['
        if isinstance(self.rows, pa.Table):
            yield polars_rows(self.rows)
        else:
            yield from self.rows.json_chunks()
        yield b"]}"


@dataclass(frozen=True, slots=True)
class TextDisplay:
    """Text to show (EXPLAIN's SQL, an analytics' message)."""

    title: str
    text: str
    mime: str = "text/plain"
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"title", "text", "mime"}``."""
        return {"title": self.title, "text": self.text, "mime": self.mime}


Display = TableDisplay | TextDisplay


def to_json(displays: list[Display]) -> str:
    """All displays as one JSON document (a list)."""
    return b"".join(json_chunks(displays)).decode()


def write_json(displays: list[Display], out: BinaryIO) -> None:
    """All displays as one JSON document, streamed to ``out``."""
    for chunk in json_chunks(displays):
        out.write(chunk)


def json_chunks(displays: list[Display]) -> Iterator[bytes | memoryview]:
    """`to_json` in pieces."""
    yield b"["
    for i, d in enumerate(displays):
        yield b", " if i else b""
        if isinstance(d, TableDisplay):
            yield from d.json_chunks()
        else:
            yield json.dumps(d.as_json()).encode()
    yield b"]"


def polars_rows(table: pa.Table) -> bytes:
    """Rows as comma-separated JSON objects, by Polars (brackets stripped)."""
    import polars as pl

    frame = pl.from_arrow(table)
    text = frame.write_json() if isinstance(frame, pl.DataFrame) and table.num_rows else "[]"
    return text.strip()[1:-1].encode()
