"""Parser: identity round-trips (identity.hf) and error messages (errors.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kestrel.errors import HuntError, HuntSyntaxError
from kestrel.hunt import ast
from kestrel.hunt.format import format_hunt
from kestrel.hunt.parser import parse
from kestrel.hunt.session import Session

CASES = Path(__file__).parent / "cases"
IDENTITY = [
    line.strip()
    for line in (CASES / "identity.hf").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
ERRORS = yaml.safe_load((CASES / "errors.yml").read_text())


@pytest.mark.parametrize("line", IDENTITY)
def test_identity(line: str) -> None:
    hunt = parse(line)
    assert format_hunt(hunt) == line
    assert parse(format_hunt(hunt)) == hunt


@pytest.mark.parametrize("case", ERRORS, ids=[c["name"] for c in ERRORS])
def test_error(case: dict[str, object]) -> None:
    with Session() as session, pytest.raises(HuntError) as info:
        session.execute(str(case["hunt"]))
    error = info.value
    assert str(case.get("message", "")) in error.message
    assert str(case.get("hint", "")) in error.hint
    assert (error.line, error.col) == (case["line"], case["col"])


def test_syntax_error_lists_expected() -> None:
    with pytest.raises(HuntSyntaxError) as info:
        parse("p = GET process WHERE name =")
    assert "a quoted string" in info.value.expected


def test_spans_point_at_statements() -> None:
    hunt = parse("a = NEW process ['x']\n\n  DISP a")
    assert hunt.statements[1].span == ast.Span(3, 3)


def test_keywords_are_case_insensitive() -> None:
    assert parse("p = get process where name = 'a' limit 5") == parse(
        "p = GET process WHERE name = 'a' LIMIT 5"
    )


def test_multiline_statement_and_comments() -> None:
    hunt = parse("# a comment\np = GET process\n    WHERE name = 'a'  # trailing\n    LIMIT 2\n")
    assert format_hunt(hunt) == "p = GET process WHERE name = 'a' LIMIT 2"


def test_sort_command_after_assignment() -> None:
    hunt = parse("b = a\nSORT a BY pid")
    assert [type(s.command) for s in hunt.statements] == [ast.VarExpr, ast.Sort]


def test_standalone_parser_is_built_from_this_grammar() -> None:
    """`grammar_parser` is generated: it must be regenerated when the grammar changes."""
    from kestrel.hunt import grammar_build, grammar_parser

    assert grammar_build.grammar_sha256() == grammar_parser.GRAMMAR_SHA256, (
        "grammar.lark changed: run `python -m kestrel.hunt.grammar_build`"
    )


def _lark_outcome(parser: object, text: str) -> object:
    """The tree or the error's class name, line, column and expected terminals (trees compare
    by rule names and tokens: Lark's rule names are tokens, the stand-alone's plain text)."""
    try:
        return parser.parse(text)  # type: ignore[attr-defined]
    except Exception as exc:
        expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
        return (type(exc).__name__, getattr(exc, "line", None), getattr(exc, "column", None),
                expected)  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [*IDENTITY, *(str(c["hunt"]) for c in ERRORS)],
)
def test_standalone_parser_matches_lark(text: str) -> None:
    """The stand-alone parser gives Lark's own trees, positions and errors."""
    from lark import Lark

    from kestrel.hunt.grammar_build import GRAMMAR
    from kestrel.hunt.parser import _lark

    reference = _reference_lark(Lark, GRAMMAR.read_text())
    assert _lark_outcome(_lark(), text) == _lark_outcome(reference, text)
    if not isinstance(_lark_outcome(reference, text), tuple):
        mine, theirs = _lark().parse(text), reference.parse(text)
        spans = [(t.meta.line, t.meta.column) for t in mine.iter_subtrees() if not t.meta.empty]
        assert spans == [(t.meta.line, t.meta.column) for t in theirs.iter_subtrees()
                         if not t.meta.empty]  # fmt: skip


_REFERENCE: dict[str, object] = {}


def _reference_lark(lark: type, grammar: str) -> Any:
    """Lark itself over the grammar, with the options the stand-alone parser was made with."""
    if grammar not in _REFERENCE:
        _REFERENCE[grammar] = lark(grammar, parser="lalr", propagate_positions=True)
    return _REFERENCE[grammar]
