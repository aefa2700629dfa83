"""The AST's `Node` base behaves as the frozen dataclasses it replaced."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from kestrel.hunt import ast
from kestrel.hunt.node import fields


@dataclass(frozen=True)
class _Reference:
    """`ast.Get` as it was declared: the behaviour `Node` must keep."""

    entity_type: str
    sources: tuple[str, ...] = ()
    where: ast.Where | None = None
    time: ast.TimeRange | None = None
    limit: int | None = None
    span: ast.Span = field(default=ast.NOWHERE, compare=False)


def test_construction_defaults_and_fields() -> None:
    get = ast.Get("process", limit=5)
    assert (get.entity_type, get.sources, get.where, get.limit, get.span) == (
        "process", (), None, 5, ast.NOWHERE)  # fmt: skip
    assert fields(get) == ("entity_type", "sources", "where", "time", "limit", "span")
    assert ast.Get(entity_type="process", limit=5) == get


def test_equality_and_hash_ignore_span_like_the_dataclass() -> None:
    here, there = ast.Span(1, 2), ast.Span(3, 4)
    a, b = ast.Get("process", span=here), ast.Get("process", span=there)
    ra, rb = _Reference("process", span=here), _Reference("process", span=there)
    assert (a == b) == (ra == rb) is True
    assert (hash(a) == hash(b)) == (hash(ra) == hash(rb)) is True
    assert a != ast.Get("file", span=here)
    assert ast.Copy("v") != ast.Info("v")  # same fields, another class
    assert ast.Span(1, 2) != ast.Span(1, 3)  # Span's own fields are compared
    assert len({a, b, ast.Get("file")}) == 2


def test_frozen_and_repr() -> None:
    get = ast.Get("process")
    with pytest.raises(FrozenInstanceError):
        get.limit = 3  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del get.limit
    assert repr(ast.Span(1, 2)) == "Span(line=1, col=2)"
    assert repr(get) == repr(_Reference("process")).replace("_Reference", "Get")
    assert copy.deepcopy(get) == get


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="missing argument 'entity_type'"):
        ast.Get()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'nope'"):
        ast.Get("process", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'entity_type'"):
        ast.Get("process", entity_type="file")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 6 arguments"):
        ast.Get("process", (), None, None, None, ast.NOWHERE, 7)  # type: ignore[call-arg]
