"""What a hunt shows: tables (DISP, INFO, DESCRIBE), text (EXPLAIN) and analytics output.

Display objects are plain data; the CLI renders them with Rich or as JSON, a notebook or the
API could render them as HTML. Nothing here prints.
"""

from __future__ import annotations

import datetime as dt
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
        """``{"title", "columns", "rows"}`` with JSON-safe values."""
        rows = [[_json_value(v) for v in row.values()] for row in self.table.to_pylist()]
        return {"title": self.title, "columns": self.table.column_names, "rows": rows}


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


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_json(displays: list[Display]) -> str:
    """All displays as one JSON document (a list)."""
    return json.dumps([d.as_json() for d in displays], default=str)
