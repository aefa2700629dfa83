"""What a hunt shows: tables (DISP, INFO, DESCRIBE), text (EXPLAIN) and analytics output.

Display objects are plain data; the CLI renders them with Rich or as JSON, a notebook or the
API could render them as HTML. Nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class TableDisplay:
    """Rows to show, as an Arrow table (DISP, INFO, DESCRIBE)."""

    title: str
    table: pa.Table

    def as_json(self) -> dict[str, Any]:
        """``{"title", "columns", "rows"}``: rows as objects, times as ISO strings."""
        return json.loads(self.json_text())  # type: ignore[no-any-return]

    def json_text(self) -> str:
        """`as_json` as text, written by Polars (Rust): a million rows without a Python object
        per value, so a DISP of every entity is not bound by the interpreter."""
        import polars as pl

        frame = pl.from_arrow(self.table)
        rows = frame.write_json() if isinstance(frame, pl.DataFrame) else "[]"
        head = json.dumps({"title": self.title, "columns": self.table.column_names})
        return head[:-1] + ', "rows": ' + rows + "}"


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
    parts = [d.json_text() if isinstance(d, TableDisplay) else json.dumps(d.as_json())
             for d in displays]  # fmt: skip
    return "[" + ", ".join(parts) + "]"
