"""Parser: identity round-trips (identity.hf) and error messages (errors.yml)."""

from __future__ import annotations

from pathlib import Path

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
