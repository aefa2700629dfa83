"""The evaluation frame: the rows a group of rules may match, with exactly the columns their
expressions read (schema columns, their lower-cased copies, source fields from ``raw``).

Lower-casing and JSON extraction are done once per frame, for the candidate rows only, not
once per rule or per event: that is what keeps case-insensitive matching cheap.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from kestrel.detect.sigma.compile import LOWER_PREFIX, RAW_PREFIX
from kestrel.detect.sigma.pipelines import RAW_PATHS, RAW_PATHS_DEFAULT

ROW = "__row"


def build_frame(events: pl.DataFrame, rows: pl.Series, names: Iterable[str]) -> pl.DataFrame:
    """``events`` restricted to ``rows`` (row numbers), with the frame columns ``names``."""
    wanted = sorted(set(names))
    base_cols = {n.removeprefix(LOWER_PREFIX) for n in wanted}
    schema_cols = {n for n in base_cols if not n.startswith(RAW_PREFIX)}
    raw_fields = sorted(n.removeprefix(RAW_PREFIX) for n in base_cols if n.startswith(RAW_PREFIX))
    keep = [ROW, *sorted(schema_cols - {ROW}), *(["raw", "source"] if raw_fields else [])]
    sub = events.select(list(dict.fromkeys(keep))).gather(rows) if len(rows) else events.clear()
    if raw_fields:
        sub = sub.with_columns(_extract(sub, f).alias(RAW_PREFIX + f) for f in raw_fields)
    lowered = [n for n in wanted if n.startswith(LOWER_PREFIX)]
    return sub.with_columns(_lower(pl.col(n.removeprefix(LOWER_PREFIX))).alias(n) for n in lowered)


def _lower(col: pl.Expr) -> pl.Expr:
    return col.cast(pl.String).str.to_lowercase()


def _extract(frame: pl.DataFrame, field: str) -> pl.Expr:
    """A source field out of ``raw``, by the paths of the reader each row came from."""
    sources = frame.get_column("source").unique().to_list() if "source" in frame else []
    if len(sources) == 1:
        return _coalesce(field, RAW_PATHS.get(sources[0] or "", RAW_PATHS_DEFAULT))
    expr: pl.Expr | None = None
    for src in sources:
        paths = _coalesce(field, RAW_PATHS.get(src or "", RAW_PATHS_DEFAULT))
        cond = pl.col("source").is_null() if src is None else pl.col("source") == src
        expr = pl.when(cond).then(paths) if expr is None else expr.when(cond).then(paths)  # type: ignore[attr-defined]
    return expr.otherwise(None) if expr is not None else pl.lit(None, pl.String)  # type: ignore[attr-defined]


def _coalesce(field: str, templates: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce([pl.col("raw").str.json_path_match(json_path(t, field)) for t in templates])


def json_path(template: str, field: str) -> str:
    """``Event.EventData.{f}`` + ``Image`` → ``$['Event']['EventData']['Image']``; a dotted
    Sigma field (``requestParameters.bucketName``) is a nested path."""
    steps = [s for part in template.split(".") for s in (part.format(f=field).split("."))]
    return "$" + "".join("[*]" if s == "*" else "['" + s.replace("'", "\\'") + "']" for s in steps)
