"""Hunt text → AST, with syntax errors that say where, what was expected, and what was meant.

The grammar lives in ``grammar.lark`` (LALR, so parsing is linear and start-up stays small);
it runs through Lark's stand-alone parser generated from it (`grammar_parser`, made by
`grammar_build`), which starts ≈ 0.1 CPU-s faster than importing Lark and loading the grammar.
This module only turns Lark's tree into `kestrel.hunt.ast` nodes and Lark's exceptions into
`HuntSyntaxError` with line, column, the expected terminals in words and a "did you mean"
hint when the offending word is close to a keyword.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from kestrel.errors import HuntSyntaxError
from kestrel.hunt import ast
from kestrel.hunt.grammar_parser import (
    Lark,
    Lark_StandAlone,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    v_args,
)

GRAMMAR = Path(__file__).with_name("grammar.lark")

# Terminal names as a hunter would read them in "expected …".
_READABLE = {
    "VARIABLE": "a variable name", "ENTITY_TYPE": "an entity type", "RELATION": "a relation",
    "ATTRIBUTE": "an attribute", "VAR_ATTR": "var.attribute", "STRING": "a quoted string",
    "NUMBER": "a number", "INT": "an integer", "TIMESTAMP": "a timestamp (t'2021-05-06T00:00:00Z')",
    "PATH": "a path or URI", "OP_SIGN": "a comparison (=, !=, <, <=, >, >=)",
    "OP_WORD": "IN, LIKE, ILIKE, MATCHES, ISSUBSET or ISSUPERSET", "TIME_UNIT": "a time unit",
    "AGG_FUNC": "MIN, MAX, SUM, AVG, COUNT or NUNIQUE", "TRANSFORM": "TIMESTAMPED(…)",
    "SORT_BY": "SORT BY", "EQUAL": "'='", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COMMA": "','", "PLUS": "'+'", "COLON": "':'", "LBRACE": "'{'",
    "RBRACE": "'}'", "$END": "end of input",
}  # fmt: skip
COMMANDS = ("GET", "FIND", "GROUP", "JOIN", "LOAD", "NEW", "SORT", "COPY", "APPLY", "DISP",
            "INFO", "SAVE", "DESCRIBE", "EXPLAIN")  # fmt: skip
KEYWORDS = (*COMMANDS, "FROM", "WHERE", "BY", "WITH", "AS", "ON", "TO", "ATTR", "LIMIT",
                       "OFFSET", "ASC", "DESC", "AND", "OR", "NOT", "IS", "NULL", "SIGMA",
                       "START", "STOP", "LAST", "BIN", "TIMESTAMPED", "OF")  # fmt: skip


@functools.cache
def _lark() -> Lark:
    parser: Lark = Lark_StandAlone()  # type: ignore[no-untyped-call]
    return parser


def parse(text: str) -> ast.Hunt:
    """Parse a hunt-flow. Raises `HuntSyntaxError` with line, column and what was expected."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    hunt = _ToAst().transform(tree)
    assert isinstance(hunt, ast.Hunt)
    return hunt


# -- errors ------------------------------------------------------------------------------------


def _syntax_error(exc: UnexpectedInput, text: str) -> HuntSyntaxError:
    expected = _expected(exc)
    found = _found(exc, text)
    at_end = found == "end of input" or exc.line < 1
    line, col = _end(text) if at_end else (int(exc.line), int(exc.column))
    message = f"unexpected {found}" + (f"; expected {_join(expected)}" if expected else "")
    return HuntSyntaxError(message, line, col, expected, _hint(text, line, col))


def _expected(exc: UnexpectedInput) -> tuple[str, ...]:
    names: set[str] = set()
    if isinstance(exc, UnexpectedToken | UnexpectedEOF):
        names = set(exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        names = set(exc.allowed or ())
    return tuple(sorted({_READABLE.get(n, n) for n in names if not n.startswith("__")}))


def _found(exc: UnexpectedInput, text: str) -> str:
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        return "end of input" if token.type == "$END" else f"{token.value!r}"
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        return f"{text[at : at + 1]!r}"
    return "end of input"


def _hint(text: str, line: int, col: int) -> str:
    """ "did you mean" for a misspelt keyword (``GTE`` → GET, ``WHRE`` → WHERE).

    A misspelt keyword usually parses as a name, so the parser fails a word or two later:
    look back from the error, on its line, for the nearest word one edit from a keyword.
    """
    row = text.split("\n")[line - 1] if 0 < line <= text.count("\n") + 1 else ""
    words = re.findall(r"[A-Za-z]{3,}", row[: col + 20])
    for word in reversed(words):
        upper = word.upper()
        if upper in KEYWORDS:
            continue
        close = [k for k in KEYWORDS if _distance(upper, k) <= (1 if len(k) <= 5 else 2)]
        if close:
            return f"did you mean {close[0]}?"
    return ""


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _end(text: str) -> tuple[int, int]:
    lines = text.rstrip().split("\n") or [""]
    return len(lines), len(lines[-1]) + 1


def _join(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# -- tree → AST --------------------------------------------------------------------------------


def _span(meta: Any) -> ast.Span:
    return ast.Span(getattr(meta, "line", 0), getattr(meta, "column", 0))


def _tok(children: list[Any], kind: str) -> list[str]:
    return [str(c) for c in children if isinstance(c, Token) and c.type == kind]


def _one(children: list[Any], kind: str) -> str | None:
    found = _tok(children, kind)
    return found[0] if found else None


def _of(children: list[Any], cls: type[Any]) -> Any:
    return next((c for c in children if isinstance(c, cls)), None)


def _unquote(text: str) -> str:
    """A Kestrel string: Python-like escapes, an ``r`` prefix keeps backslashes."""
    if text.startswith("r"):
        return text[2:-1]
    body = text[1:-1]
    return (
        body.encode("latin-1", "backslashreplace").decode("unicode_escape")
        if "\\" in body
        else body
    )


def _path(text: str) -> str:
    return text[1:-1] if text[:1] in "'\"" else text


def _timestamp(text: str) -> str:
    return text.lstrip("t").strip("'\"")


def _int(children: list[Any]) -> int | None:
    value = _one(children, "INT")
    return int(value) if value is not None else None


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """One method per grammar rule; each returns an AST node (or a plain piece of one)."""

    def start(self, meta: Any, children: list[ast.Statement]) -> ast.Hunt:
        return ast.Hunt(tuple(children))

    # -- statements
    def assign_command(self, meta: Any, c: list[Any]) -> ast.Statement:
        return ast.Statement(c[1].command, str(c[0]), _span(meta))

    def assign_expr(self, meta: Any, c: list[Any]) -> ast.Statement:
        return ast.Statement(c[1], str(c[0]), _span(meta))

    def merge(self, meta: Any, c: list[Any]) -> ast.Statement:
        names = tuple(str(t) for t in c)
        return ast.Statement(ast.Merge(names[1:], _span(meta)), names[0], _span(meta))

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        raise AssertionError(f"no AST rule for {data}")  # a grammar rule without a method

    # -- value commands
    def get(self, meta: Any, c: list[Any]) -> ast.Statement:
        sources: tuple[str, ...] = _of(c, tuple) or ()
        limit = _of(c, _Limit)
        return self._wrap(ast.Get(
            str(c[1]), sources, _of(c, ast.Where), _of(c, ast.TimeRange),
            limit.n if limit else None, _span(meta)))  # fmt: skip

    def find(self, meta: Any, c: list[Any]) -> ast.Statement:
        limit = _of(c, _Limit)
        return self._wrap(ast.Find(
                str(c[1]), str(c[2]).upper(), bool(_tok(c, "BY") or _tok(c, "OF")),
            _tok(c, "VARIABLE")[0], _of(c, ast.Where), _of(c, ast.TimeRange),
            limit.n if limit else None, _span(meta)))  # fmt: skip

    def group(self, meta: Any, c: list[Any]) -> ast.Statement:
        keys = tuple(x for x in c if isinstance(x, ast.GroupKey))
        aggs = tuple(x for x in c if isinstance(x, ast.Aggregation))
        return self._wrap(ast.Group(str(c[1]), keys, aggs, _span(meta)))

    def join(self, meta: Any, c: list[Any]) -> ast.Statement:
        names, attrs = _tok(c, "VARIABLE"), _tok(c, "ATTRIBUTE")
        left, right = (attrs[0], attrs[1]) if attrs else (None, None)
        return self._wrap(ast.Join(names[0], names[1], left, right, _span(meta)))

    def load(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Load(c[1], _one(c, "ENTITY_TYPE"), _span(meta)))

    def new(self, meta: Any, c: list[Any]) -> ast.Statement:
        items = [x for x in c if isinstance(x, _NewItem)]
        rows = tuple(x.row for x in items)
        strings = bool(items) and all(x.string for x in items)
        return self._wrap(ast.New(_one(c, "ENTITY_TYPE"), rows, strings, _span(meta)))

    def sort(self, meta: Any, c: list[Any]) -> ast.Statement:
        direction = _of(c, _Direction)
        return self._wrap(ast.Sort(
            str(c[1]), _tok(c, "ATTRIBUTE")[0], direction.value if direction else None,
            _span(meta)))  # fmt: skip

    def copy(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Copy(str(c[1]), _span(meta)))

    # -- other commands
    def apply(self, meta: Any, c: list[Any]) -> ast.Statement:
        args = tuple(x for x in c if isinstance(x, tuple) and len(x) == 2)
        return self._wrap(ast.Apply(c[1], tuple(_tok(c, "VARIABLE")), args, _span(meta)))

    def disp(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Disp(c[1], _span(meta)))

    def info(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Info(str(c[1]), _span(meta)))

    def save(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Save(str(c[1]), c[3], _span(meta)))

    def describe(self, meta: Any, c: list[Any]) -> ast.Statement:
        var, _, attr = str(c[1]).partition(".")
        return self._wrap(ast.Describe(var, attr, _span(meta)))

    def explain(self, meta: Any, c: list[Any]) -> ast.Statement:
        return self._wrap(ast.Explain(str(c[1]), _span(meta)))

    @staticmethod
    def _wrap(command: ast.Command) -> ast.Statement:
        return ast.Statement(command, None, command.span)

    # -- variable expression and clauses
    def var_expr(self, meta: Any, c: list[Any]) -> ast.VarExpr:
        sort: _SortBy | None = _of(c, _SortBy)
        limit, offset = _of(c, _Limit), _of(c, _Offset)
        transform = _one(c, "TRANSFORM")
        return ast.VarExpr(
            _tok(c, "VARIABLE")[0], transform.upper() if transform else None,
            _of(c, ast.Where), _of(c, _Attrs).names if _of(c, _Attrs) else (),
            sort.attr if sort else None, sort.direction if sort else None,
            limit.n if limit else None, offset.n if offset else None, _span(meta))  # fmt: skip

    def attrs(self, meta: Any, c: list[Any]) -> _Attrs:
        return _Attrs(tuple(_tok(c, "ATTRIBUTE")))

    def sort_by(self, meta: Any, c: list[Any]) -> _SortBy:
        direction = _of(c, _Direction)
        return _SortBy(_tok(c, "ATTRIBUTE")[0], direction.value if direction else None)

    def direction(self, meta: Any, c: list[Any]) -> _Direction:
        return _Direction(str(c[0]).upper())

    def limit(self, meta: Any, c: list[Any]) -> _Limit:
        return _Limit(int(str(c[1])))

    def offset(self, meta: Any, c: list[Any]) -> _Offset:
        return _Offset(int(str(c[1])))

    def source(self, meta: Any, c: list[Any]) -> tuple[str, ...]:
        return tuple(_path(str(t)) for t in c)

    def path(self, meta: Any, c: list[Any]) -> str:
        return _path(str(c[0]))

    # -- WHERE
    def where(self, meta: Any, c: list[Any]) -> ast.Where:
        return ast.Where(c[1], False, _span(meta))

    def where_stix(self, meta: Any, c: list[Any]) -> ast.Where:
        return ast.Where(c[1], True, _span(meta))

    def or_(self, meta: Any, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp("OR", c[0], c[2], _span(meta))

    def and_(self, meta: Any, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp("AND", c[0], c[2], _span(meta))

    def compare(self, meta: Any, c: list[Any]) -> ast.Comparison:
        return ast.Comparison(str(c[0]), c[1], c[2], _span(meta))

    def compare_null(self, meta: Any, c: list[Any]) -> ast.Comparison:
        op = "IS NOT" if _one(c, "NOT") else "IS"
        return ast.Comparison(str(c[0]), op, ast.Literal(None), _span(meta))

    def sigma(self, meta: Any, c: list[Any]) -> ast.SigmaMatch:
        return ast.SigmaMatch(_unquote(str(c[1])), _span(meta))

    def op(self, meta: Any, c: list[Any]) -> str:
        return " ".join(str(t).upper() for t in c)

    # -- values
    def string(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(_unquote(str(c[0])), _span(meta))

    def number(self, meta: Any, c: list[Any]) -> ast.Literal:
        text = str(c[0])
        value: float | int = float(text) if any(x in text for x in ".eE") else int(text)
        return ast.Literal(value, _span(meta))

    def true(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(True, _span(meta))

    def false(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(False, _span(meta))

    def null(self, meta: Any, c: list[Any]) -> ast.Literal:
        return ast.Literal(None, _span(meta))

    def reference(self, meta: Any, c: list[Any]) -> ast.Reference:
        var, dot, attr = str(c[0]).partition(".")
        return ast.Reference(var, attr if dot else None, _span(meta))

    def list_(self, meta: Any, c: list[Any]) -> ast.ListValue:
        return ast.ListValue(tuple(c), _span(meta))

    # -- time
    def span_absolute(self, meta: Any, c: list[Any]) -> ast.TimeRange:
        stamps = _tok(c, "TIMESTAMP")
        return ast.TimeRange(_timestamp(stamps[0]), _timestamp(stamps[1]), span=_span(meta))

    def span_relative(self, meta: Any, c: list[Any]) -> ast.TimeRange:
        unit = _UNITS[str(c[2]).upper()]
        return ast.TimeRange(last=int(str(c[1])), unit=unit, span=_span(meta))

    # -- GROUP / NEW / APPLY pieces
    def group_key(self, meta: Any, c: list[Any]) -> ast.GroupKey:
        return ast.GroupKey(str(c[0]))

    def bin_key(self, meta: Any, c: list[Any]) -> ast.GroupKey:
        unit = _one(c, "TIME_UNIT")
        return ast.GroupKey(
            _tok(c, "ATTRIBUTE")[0], _int(c), _UNITS[unit.upper()] if unit else None
        )

    def agg(self, meta: Any, c: list[Any]) -> ast.Aggregation:
        return ast.Aggregation(str(c[0]).upper(), str(c[1]), _one(c, "VARIABLE"))

    def new_string(self, meta: Any, c: list[Any]) -> _NewItem:
        return _NewItem((("", _json_string(str(c[0]))),), True)

    def new_object(self, meta: Any, c: list[Any]) -> _NewItem:
        return _NewItem(tuple(c), False)

    def pair(self, meta: Any, c: list[Any]) -> tuple[str, ast.Scalar]:
        value = c[1].value if isinstance(c[1], ast.Literal) else str(c[1].variable)
        return _json_string(str(c[0])), value

    def arg(self, meta: Any, c: list[Any]) -> tuple[str, ast.Value]:
        return str(c[0]), c[1]


def _json_string(text: str) -> str:
    if text.startswith('"'):
        return str(json.loads(text))
    return _unquote(text)


_UNITS = {u: unit for unit, forms in (
    ("DAYS", ("DAYS", "DAY", "D")), ("HOURS", ("HOURS", "HOUR", "H")),
    ("MINUTES", ("MINUTES", "MINUTE", "M")), ("SECONDS", ("SECONDS", "SECOND", "S")),
) for u in forms}  # fmt: skip


class _Limit:
    def __init__(self, n: int) -> None:
        self.n = n


class _Offset:
    def __init__(self, n: int) -> None:
        self.n = n


class _Direction:
    def __init__(self, value: str) -> None:
        self.value = value


class _Attrs:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names


class _SortBy:
    def __init__(self, attr: str, direction: str | None) -> None:
        self.attr, self.direction = attr, direction


class _NewItem:
    def __init__(self, row: tuple[tuple[str, ast.Scalar], ...], string: bool) -> None:
        self.row, self.string = row, string


__all__ = ["parse"]
