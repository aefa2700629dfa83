"""The evaluation frame: the rows a group of rules may match, with exactly the columns their
expressions read (schema columns, their lower-cased copies, source fields from ``raw``).

Lower-casing and source-field extraction are done once per frame, for the candidate rows
only, not once per rule or per event: that is what keeps case-insensitive matching cheap.
Source fields come out of ``raw`` with one ``json_decode`` per reader into a struct that holds
only the fields the rules read, at every place that reader's shape may keep them
(`pipelines.RAW_PATHS`: EVTX ``Event.EventData``, NXLog top level, Winlogbeat
``winlog.event_data`` ...). A record whose field holds a list or an object cannot be decoded
into text that way; then that reader's fields fall back to one JSON path per field and place.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import polars as pl

from kestrel.detect.sigma.compile import LOWER_PREFIX, RAW_PREFIX
from kestrel.detect.sigma.pipelines import RAW_PATHS, RAW_PATHS_DEFAULT

ROW = "__row"
_DECODED = "__decoded"
Tree = dict[str, "Tree | None"]
"""A struct layout: key → nested layout, or None for a text leaf."""


def build_frame(
    events: pl.DataFrame,
    rows: pl.Series,
    names: Iterable[str],
    raw_rows: pl.Series | None = None,
) -> pl.DataFrame:
    """``events`` restricted to ``rows`` (row numbers), with the frame columns ``names``.

    Source fields are decoded from ``raw`` only at ``raw_rows`` (sorted, a subset of
    ``rows``; None: at every row) and null elsewhere: decoding is the costly part, and the
    caller may know that only some rows are read by rules that need source fields."""
    wanted = sorted(set(names))
    base_cols = {n.removeprefix(LOWER_PREFIX) for n in wanted}
    schema_cols = {n for n in base_cols if not n.startswith(RAW_PREFIX)}
    raw_fields = sorted(n.removeprefix(RAW_PREFIX) for n in base_cols if n.startswith(RAW_PREFIX))
    keep = [ROW, *sorted(schema_cols - {ROW}), *(["raw", "source"] if raw_fields else [])]
    sub = events.select(list(dict.fromkeys(keep))).gather(rows) if len(rows) else events.clear()
    if raw_fields and (raw_rows is None or len(raw_rows) == len(rows)):
        sub = sub.with_columns(source_fields(sub, raw_fields))
    elif raw_fields and raw_rows is not None and raw_rows.is_empty():
        sub = sub.with_columns(pl.lit(None, pl.String).alias(RAW_PREFIX + f) for f in raw_fields)
    elif raw_fields and raw_rows is not None:
        part = sub.gather(rows.search_sorted(raw_rows))
        decoded = part.select(ROW).with_columns(source_fields(part, raw_fields))
        sub = sub.join(decoded, on=ROW, how="left", maintain_order="left")
    lowered = [n for n in wanted if n.startswith(LOWER_PREFIX)]
    return sub.with_columns(_lower(pl.col(n.removeprefix(LOWER_PREFIX))).alias(n) for n in lowered)


def _lower(col: pl.Expr) -> pl.Expr:
    return col.cast(pl.String).str.to_lowercase()


def source_fields(frame: pl.DataFrame, fields: list[str]) -> list[pl.Series]:
    """``raw:<field>`` for each field: per reader, its values where the rows are of that reader."""
    sources = frame.get_column("source").unique().to_list()
    per_source = [_fields_of(frame, src, fields) for src in sources]
    if len(per_source) == 1:  # one reader (the usual batch): its columns as they are
        return [s.alias(RAW_PREFIX + f) for s, f in zip(per_source[0], fields, strict=True)]
    merged = pl.select(
        pl.coalesce([p[i] for p in per_source]).alias(RAW_PREFIX + f) for i, f in enumerate(fields)
    )
    return merged.get_columns()


def _fields_of(frame: pl.DataFrame, source: str | None, fields: list[str]) -> list[pl.Series]:
    """The fields of the rows of one reader (null on the other rows)."""
    templates = RAW_PATHS.get(source or "", RAW_PATHS_DEFAULT)
    mine = pl.col("source").is_null() if source is None else pl.col("source") == source
    raw = pl.when(mine).then(pl.col("raw"))
    plan = struct_plan(templates, tuple(fields))
    if plan is not None:
        try:
            decoded = frame.select(raw.str.json_decode(_dtype(plan[0])).alias(_DECODED))
            return _from_struct(decoded, plan[1], fields, templates, frame, raw)
        except pl.exceptions.PolarsError:
            pass  # a list or an object where text was expected: per-field paths below
    return frame.select(
        _by_paths(raw, f, templates).alias(f"__f{i}") for i, f in enumerate(fields)
    ).get_columns()


def _from_struct(
    decoded: pl.DataFrame,
    paths: dict[str, list[tuple[str, ...]]],
    fields: list[str],
    templates: tuple[str, ...],
    frame: pl.DataFrame,
    raw: pl.Expr,
) -> list[pl.Series]:
    """Each field as the first of its places that holds it; ``*`` places by JSON path."""
    wild = [t for t in templates if "*" in t and _holds(frame, raw, t)]
    if wild:
        decoded = decoded.with_columns(frame.select(raw.alias("raw")))
    exprs = [
        pl.coalesce(
            [_getter(p) for p in paths[f]]
            + [pl.col("raw").str.json_path_match(json_path(t, f)) for t in wild]
        ).alias(f"__f{i}")
        for i, f in enumerate(fields)
    ]
    return decoded.select(exprs).get_columns()  # one plan for every field


def _holds(frame: pl.DataFrame, raw: pl.Expr, template: str) -> bool:
    """Whether any record has the object a ``*`` place goes through (EVTX ``UserData``
    is rare: the JSON path pass over every record is skipped when none has it)."""
    key = template.split(".*", 1)[0].rsplit(".", 1)[-1]
    return bool(frame.select(raw.str.contains(f'"{key}":', literal=True).any()).item())


def _getter(path: tuple[str, ...]) -> pl.Expr:
    expr = pl.col(_DECODED)
    for step in path:
        expr = expr.struct.field(step)
    return expr.cast(pl.String)


@lru_cache(maxsize=256)
def struct_plan(
    templates: tuple[str, ...], fields: tuple[str, ...]
) -> tuple[Tree, dict[str, list[tuple[str, ...]]]] | None:
    """The struct layout holding every (template, field) place, and each field's places in
    order; None if two places clash (a field that is both a value and an object)."""
    tree: Tree = {}
    paths: dict[str, list[tuple[str, ...]]] = {f: [] for f in fields}
    for f in fields:
        for t in templates:
            if "*" in t:
                continue
            path = tuple(_steps(t, f))
            if not _insert(tree, path):
                return None
            paths[f].append(path)
    return tree, paths


def _insert(tree: Tree, path: tuple[str, ...]) -> bool:
    node = tree
    for step in path[:-1]:
        child = node.setdefault(step, {})
        if child is None:
            return False
        node = child
    if node.get(path[-1], None) is not None:
        return False
    node[path[-1]] = None
    return True


def _dtype(tree: Tree) -> pl.Struct:
    return pl.Struct({k: pl.String if v is None else _dtype(v) for k, v in tree.items()})


def _by_paths(raw: pl.Expr, field: str, templates: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce([raw.str.json_path_match(json_path(t, field)) for t in templates])


def _steps(template: str, field: str) -> list[str]:
    return [s for part in template.split(".") for s in part.format(f=field).split(".")]


def json_path(template: str, field: str) -> str:
    """``Event.EventData.{f}`` + ``Image`` → ``$['Event']['EventData']['Image']``; a dotted
    Sigma field (``requestParameters.bucketName``) is a nested path."""
    steps = _steps(template, field)
    return "$" + "".join("[*]" if s == "*" else "['" + s.replace("'", "\\'") + "']" for s in steps)
