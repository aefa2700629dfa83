"""DuckDB SQL text for the hunt compiler's sqlglot trees, without loading sqlglot's DuckDB dialect.

Importing sqlglot's DuckDB dialect parses some twenty SQL templates (for functions a hunt never
emits: ``SEQ``, ``RANDSTR``, ``MINHASH`` …), ≈ 45-65 ms of CPU, a tenth of `kestrel hunt`'s
start-up. The compiler still builds every query with sqlglot, and PostgreSQL still gets its
text from sqlglot's PostgreSQL dialect; for DuckDB, `sql` writes the same text with sqlglot's
own base generator and the DuckDB dialect's settings, for the node types the compiler builds
(`_PLAIN`) in the forms where sqlglot's DuckDB generator adds nothing of its own. Any other
tree (``IN UNNEST``, array types, JOIN, regular expressions, intervals, findings' JSON …) is
written by sqlglot's DuckDB dialect as before.

`tests/hunt/test_duckdb_sql.py` holds the two equal: every setting copied here against
sqlglot's DuckDB dialect and generator, and the text of every query the hunt tests compile.
"""

# sqlglot's generator and dialect settings are plain class attributes (dicts, lists, sets)
# ruff: noqa: RUF012

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp, generator, tokens
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy, UsingColumnOrder, rename_func


def sql(query: exp.Expr, dialect: str) -> str:
    """The SQL text of ``query`` for ``dialect`` (``duckdb`` or ``postgres``)."""
    if dialect == "duckdb" and plain(query):
        return _DIALECT.generate(query)
    return query.sql(dialect=dialect)


def plain(query: exp.Expr) -> bool:
    """Whether every node of ``query`` is one the light generator writes as DuckDB's does."""
    for node in query.walk():
        kind = type(node)
        if kind not in _PLAIN:
            return False
        check = _CHECKS.get(kind)
        if check is not None and not check(node):
            return False
    return True


def _binary(node: exp.Expr | None) -> bool:
    return node is not None and node.is_type(exp.DType.BINARY, exp.DType.VARBINARY, exp.DType.BLOB)


def _text(node: exp.Expr | None) -> bool:
    """Untyped or text (DuckDB's LOWER casts anything else to VARCHAR first)."""
    kind = node.type if node is not None else None
    return kind is None or kind.is_type(*exp.DataType.TEXT_TYPES, exp.DType.UNKNOWN)


# The node types the hunt compiler builds. Most have no DuckDB-specific writer; those that
# do (`_CHECKS`) are plain only in the forms where DuckDB's writer equals the base one or
# the copy below.
_PLAIN: frozenset[type[exp.Expr]] = frozenset({
    exp.Identifier, exp.Literal, exp.Column, exp.Alias, exp.Null, exp.Cast, exp.DataType,
    exp.Select, exp.From, exp.Not, exp.Is, exp.Table, exp.Where, exp.In, exp.And, exp.Min,
    exp.Exists, exp.DPipe, exp.Coalesce, exp.Subquery, exp.Lower, exp.TableAlias, exp.Star,
    exp.Or, exp.Paren, exp.If, exp.Case, exp.Group, exp.Count, exp.EQ, exp.Mul, exp.Add,
    exp.Max, exp.Union, exp.CTE, exp.Order, exp.GT, exp.With, exp.Anonymous, exp.Ordered,
    exp.Limit, exp.GTE, exp.LT, exp.LTE, exp.NEQ, exp.Like, exp.ILike, exp.Sum, exp.Avg,
    exp.PropertyEQ, exp.Window, exp.RowNumber, exp.Distinct, exp.Offset, exp.Between,
    exp.Struct, exp.ConcatWs,
})  # fmt: skip
_CHECKS: dict[type[exp.Expr], Callable[[Any], bool]] = {
    exp.Select: lambda n: not n.args.get("connect"),
    exp.In: lambda n: not n.args.get("unnest"),
    exp.DataType: lambda n: not n.is_type(exp.DType.ARRAY) and not n.expressions,
    exp.Lower: lambda n: not _binary(n) and _text(n.this),
    exp.Struct: lambda n: bool(n.expressions)
    and all(isinstance(e, exp.PropertyEQ) and isinstance(e.this, exp.Identifier)
            for e in n.expressions),
    exp.ConcatWs: lambda n: not n.args.get("flatten")
    and not any(_binary(e) for e in n.expressions),
}  # fmt: skip


def _struct_sql(self: generator.Generator, expression: exp.Struct) -> str:
    """DuckDB's struct literal ``{'key': value, …}`` (keys named by identifiers)."""
    items = (f"{self.sql(exp.Literal.string(e.name))}: {self.sql(e.expression)}"
             for e in expression.expressions)  # fmt: skip
    return "{" + ", ".join(items) + "}"


class _Generator(generator.Generator):
    """sqlglot's base generator with its DuckDB generator's settings (copied; tested equal)."""

    ARRAY_SIZE_DIM_REQUIRED = False
    CAN_IMPLEMENT_ARRAY_ANY = True
    CAST_TO_INT_ROUNDS = True
    COPY_HAS_INTO_KEYWORD = False
    HISTORICAL_DATA_POST_ALIAS = True
    IGNORE_NULLS_BEFORE_ORDER = False
    IGNORE_NULLS_IN_FUNC = True
    JOIN_HINTS = False
    JSON_KEY_VALUE_PAIR_SEP = ","
    JSON_PATH_BRACKETED_KEY_SUPPORTED = False
    LAST_DAY_SUPPORTS_DATE_PART = False
    LIMIT_FETCH = "LIMIT"
    MULTI_ARG_DISTINCT = False
    NAMED_PLACEHOLDER_TOKEN = "$"
    NORMALIZE_EXTRACT_DATE_PARTS = True
    NVL2_SUPPORTED = False
    PAD_FILL_PATTERN_IS_REQUIRED = True
    PARAMETER_TOKEN = "$"
    QUERY_HINTS = False
    RENAME_TABLE_WITH_DB = False
    SAFE_INT_DIVISION = True
    SELECT_KINDS = ()
    SEMI_ANTI_JOIN_WITH_SIDE = False
    SET_ASSIGNMENT_REQUIRES_VARIABLE_KEYWORD = True
    STAR_EXCEPT = "EXCLUDE"
    STRUCT_DELIMITER = ("(", ")")
    SUPPORTS_CREATE_TABLE_LIKE = False
    SUPPORTS_DECODE_CASE = False
    SUPPORTS_DROP_ALTER_ICEBERG_PROPERTY = False
    SUPPORTS_LIKE_QUANTIFIERS = False
    SUPPORTS_NEAREST_JOIN = True
    SUPPORTS_TO_NUMBER = False
    SUPPORTS_WINDOW_EXCLUDE = True
    TABLESAMPLE_KEYWORDS = "USING SAMPLE"
    TABLESAMPLE_SEED_KEYWORD = "REPEATABLE"
    TABLE_HINTS = False
    TYPE_PARAM_SETTINGS = {exp.DType.BIGDECIMAL: ((38, 5), (38, 38)),
                           exp.DType.DECFLOAT: ((38, 5), (38, 38))}  # fmt: skip
    TYPE_MAPPING = {
        **generator.Generator.TYPE_MAPPING,
        exp.DType.NCHAR: "TEXT", exp.DType.NVARCHAR: "TEXT", exp.DType.ROWVERSION: "BLOB",
        exp.DType.BINARY: "BLOB", exp.DType.BPCHAR: "TEXT", exp.DType.CHAR: "TEXT",
        exp.DType.DATETIME: "TIMESTAMP", exp.DType.DECFLOAT: "DECIMAL", exp.DType.FLOAT: "REAL",
        exp.DType.JSONB: "JSON", exp.DType.UINT: "UINTEGER", exp.DType.VARBINARY: "BLOB",
        exp.DType.VARCHAR: "TEXT", exp.DType.TIMESTAMPLTZ: "TIMESTAMPTZ",
        exp.DType.TIMESTAMPNTZ: "TIMESTAMP", exp.DType.TIMESTAMP_S: "TIMESTAMP_S",
        exp.DType.TIMESTAMP_MS: "TIMESTAMP_MS", exp.DType.TIMESTAMP_NS: "TIMESTAMP_NS",
        exp.DType.BIGDECIMAL: "DECIMAL",
    }  # fmt: skip
    AFTER_HAVING_MODIFIER_TRANSFORMS = {
        **generator.AFTER_HAVING_MODIFIER_TRANSFORMS,
        "sample": lambda self, e: self.sql(e, "sample"),
    }
    TRANSFORMS = {
        **generator.Generator.TRANSFORMS,
        exp.Max: rename_func("MAX"),
        exp.Min: rename_func("MIN"),
        exp.Struct: _struct_sql,
    }
    RESERVED_KEYWORDS = {
        "all", "analyse", "analyze", "and", "anti", "any", "array", "as", "asc", "asof",
        "asymmetric", "at", "authorization", "binary", "both", "by", "case", "cast", "check",
        "collate", "collation", "column", "columns", "concurrently", "constraint", "create",
        "cross", "current_catalog", "current_date", "current_role", "current_time",
        "current_timestamp", "current_user", "default", "deferrable", "desc", "describe",
        "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign",
        "freeze", "from", "full", "generated", "glob", "grant", "group", "having", "ilike",
        "in", "initially", "inner", "intersect", "into", "is", "isnull", "join", "lambda",
        "lateral", "leading", "left", "like", "limit", "localtime", "localtimestamp", "map",
        "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer",
        "overlaps", "pivot", "pivot_longer", "pivot_wider", "placing", "positional",
        "primary", "qualify", "references", "returning", "right", "select", "semi",
        "session_user", "show", "similar", "some", "struct", "summarize", "symmetric",
        "table", "tablesample", "then", "to", "trailing", "true", "try_cast", "tuple",
        "union", "unique", "unpack", "unpivot", "user", "using", "variadic", "verbose",
        "when", "where", "window", "with",
    }  # fmt: skip

    def datatype_sql(self, expression: exp.DataType) -> str:
        # DuckDB takes no modifiers on TIME / TIMESTAMP WITH TIME ZONE (as its generator)
        if expression.is_type(
            exp.DType.TIME, exp.DType.TIMETZ, exp.DType.TIMESTAMPTZ, exp.DType.TIMESTAMPLTZ
        ):
            expression.set("expressions", None)
        return super().datatype_sql(expression)


class _Tokenizer(tokens.Tokenizer):
    """The DuckDB tokenizer's escapes, from which the dialect derives how strings are written."""

    NUMERIC_ESCAPES = {"x": (16, 1, 2, 0xFF), "0": (8, 1, 3, 0o777)}
    NUMERIC_ESCAPES_ARE_BYTES = True
    BYTE_STRINGS = [("e'", "'"), ("E'", "'")]
    BYTE_STRING_ESCAPES = ["'", "\\"]


class KestrelDuckDB(Dialect):
    """sqlglot's DuckDB dialect settings (copied; tested equal), with `_Generator`."""

    ASCII_ONLY_NORMALIZATION = True
    CONCAT_COALESCE = True
    CONCAT_WS_COALESCE = True
    HAVING_ALIASES_SHADOW_UNGROUPED_COLUMNS = True
    INDEX_OFFSET = 1
    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_INSENSITIVE
    NULL_ORDERING = "nulls_are_last"
    NUMBERS_CAN_BE_UNDERSCORE_SEPARATED = True
    PREFER_COLUMNS_TO_ALIASES_IN_HAVING_AND_QUALIFY = True
    QUERY_RESULTS_ARE_STRUCTS = True
    REGEXP_EXTRACT_MISSING_GROUP_RETURNS_EMPTY = True
    REGEXP_EXTRACT_NO_MATCH_RETURNS_NULL = False
    STRICT_JSON_PATH_SYNTAX = False
    SUPPORTS_FIXED_SIZE_ARRAYS = True
    SUPPORTS_LIMIT_ALL = True
    SUPPORTS_ORDER_BY_ALL = True
    TABLES_REFERENCEABLE_AS_COLUMNS = True
    USING_COLUMN_ORDER = UsingColumnOrder.IN_PLACE
    UNESCAPED_SEQUENCES = {"\\a": "a", "\\v": "v"}

    Tokenizer = _Tokenizer
    Generator = _Generator


_DIALECT = KestrelDuckDB()
