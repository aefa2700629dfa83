"""The light DuckDB writer (`kestrel.hunt.duckdb_sql`) equals sqlglot's DuckDB dialect.

Every hunt test also checks each query it writes the light way against sqlglot's DuckDB text
(the autouse fixture `light_sql_is_sqlglot_duckdb` in conftest); here: the copied settings,
strings that need escaping, the bench's hunts taking the light path, and the fallback.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlglot import exp, generator
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.generators.duckdb import DuckDBGenerator

from kestrel.hunt import duckdb_sql
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore

# DuckDB generator settings that differ from the base generator but only concern nodes the
# light path never writes (templates are SQL trees, skipped by type): JSON paths, EXTRACT,
# window IGNORE NULLS, intervals, DDL properties.
_NOT_COPIED = {"PROPERTIES_LOCATION", "SUPPORTED_JSON_PATH_PARTS", "EXTRACT_EPOCH_MAPPINGS",
               "EXTRACT_STRFTIME_MAPPINGS", "IGNORE_RESPECT_NULLS_WINDOW_FUNCTIONS",
               "UNWRAPPED_INTERVAL_VALUES"}  # fmt: skip
# Dialect settings the light path never reads (time formats, date parts, type inference).
_NOT_COPIED_DIALECT = {"EXPRESSION_METADATA", "DATE_PART_MAPPING", "INVERSE_TIME_MAPPING",
                       "INVERSE_TIME_TRIE", "VALID_INTERVAL_UNITS"}  # fmt: skip


def _settings(cls: type[Any], base: type[Any], skip: set[str]) -> dict[str, Any]:
    """The upper-case class settings of ``cls`` that differ from ``base``'s."""
    return {name: getattr(cls, name) for name in dir(cls)
            if name.isupper() and not name.startswith("_") and name not in skip
            and name != "TRANSFORMS"
            and not isinstance(getattr(cls, name), exp.Expr)
            and getattr(cls, name) != getattr(base, name, None)}  # fmt: skip


def test_generator_settings_are_duckdbs() -> None:
    theirs = _settings(DuckDBGenerator, generator.Generator, _NOT_COPIED)
    ours = _settings(duckdb_sql._Generator, generator.Generator, _NOT_COPIED)
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        if name == "AFTER_HAVING_MODIFIER_TRANSFORMS":  # lambdas: the same keys, in order
            assert list(ours[name]) == list(value)
        else:
            assert ours[name] == value, name


def test_dialect_settings_are_duckdbs() -> None:
    theirs = _settings(DuckDB, Dialect, _NOT_COPIED_DIALECT)
    ours = _settings(duckdb_sql.KestrelDuckDB, Dialect, _NOT_COPIED_DIALECT)
    assert ours == theirs
    for name in (
        "ESCAPED_SEQUENCES",
        "STRINGS_SUPPORT_ESCAPED_SEQUENCES",
        "QUOTE_START",
        "IDENTIFIER_START",
        "NULL_ORDERING",
        "INITCAP_SUPPORTS_CUSTOM_DELIMITERS",
    ):
        assert getattr(duckdb_sql.KestrelDuckDB, name) == getattr(DuckDB, name), name


@pytest.mark.parametrize(
    "text", ["plain", "it's", "back\\slash", "line\nbreak\ttab\r", "bell\x07nul\x00", "ünï €",
             "'; DROP TABLE events; --", "\\'", "%_like"])  # fmt: skip
def test_string_literals_and_identifiers(text: str) -> None:
    query = exp.select(exp.Literal.string(text).as_(text, quoted=True), exp.column(text))
    query = query.from_(exp.to_table("events"))
    query = query.where(exp.column("name").like(exp.Literal.string(text)))
    assert duckdb_sql.plain(query)
    assert duckdb_sql.sql(query, "duckdb") == query.sql(dialect="duckdb")


def test_reserved_words_and_types() -> None:
    names = ["select", "user", "Mixed", "1st", "order", "class", "_key"]
    casts = [
        exp.cast(exp.null(), exp.DataType.build(t))
        for t in ("text", "varchar", "bigint", "double", "timestamptz", "boolean", "json", "float")
    ]
    query = exp.select(*(exp.column(n) for n in names), *casts).from_(exp.to_table("t"))
    assert duckdb_sql.plain(query)
    assert duckdb_sql.sql(query, "duckdb") == query.sql(dialect="duckdb")


def test_bench_hunts_take_the_light_path(
    hunt_store: DuckDBStore, light_sql_is_sqlglot_duckdb: list[str]
) -> None:
    attrs = "pid, name, command_line, uid, parent_pid, parent_name, host, user_name, path"
    with Session(hunt_store, lazy_display=True) as s:
        hunts = (f"p = GET process WHERE name = 'cmd.exe'\nDISP p ATTR {attrs}",
                 f"p = GET process\nq = FIND process CREATED p\nDISP q ATTR {attrs}")  # fmt: skip
        for hunt in hunts:
            shown = s.execute(hunt)
            assert b"cmd.exe" in b"".join(shown[-1].json_chunks())  # type: ignore[union-attr]
    written = "\n".join(light_sql_is_sqlglot_duckdb)
    # the filled-columns probes are text around a light-path class test (their whole text is
    # checked against sqlglot's in test_session_sql.py)
    for piece in ("GROUP BY _key", "TO_JSON({'pid': ", "NOT _key IN", "\"class\" IN ('process'"):
        assert piece in written, piece


def test_other_trees_fall_back_to_sqlglots_duckdb() -> None:
    interval = exp.Interval(this=exp.Literal.string("5"), unit=exp.var("minute"))
    arrays = exp.cast(exp.column("a"), exp.DataType.build("text[]"))
    for query in (exp.select(interval), exp.select(arrays), exp.select(exp.func("UNNEST", "a"))):
        assert not duckdb_sql.plain(query)
        assert duckdb_sql.sql(query, "duckdb") == query.sql(dialect="duckdb")
    select = exp.select(exp.column("a")).from_(exp.to_table("t"))
    assert duckdb_sql.sql(select, "postgres") == select.sql(dialect="postgres")
