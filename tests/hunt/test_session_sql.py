"""The text of the session's own queries equals what sqlglot writes for the same tree."""

from __future__ import annotations

import pytest
from sqlglot import exp

from kestrel.hunt.entities import ENTITY_TYPES, Role
from kestrel.hunt.session import filled_columns, filled_sql
from kestrel.store import DuckDBStore


def _sqlglot_filled(source: str, classes: tuple[str, ...], columns: list[str], dialect: str) -> str:
    # the query as it was built before `filled_sql`: a sqlglot tree per probe
    table = exp.to_table(source, quoted=not source.isidentifier())
    test = (exp.column("class", quoted=True).isin(*(exp.Literal.string(c) for c in classes))
            if classes else None)  # fmt: skip

    def has_value(column: str) -> exp.Expr:
        probe = exp.select(exp.Literal.number(1)).from_(table.copy())
        probe = probe.where(exp.column(column, quoted=True).is_(exp.null()).not_())
        if test is not None:
            probe = probe.where(test.copy())
        return exp.Exists(this=probe).as_(column, quoted=True)

    return exp.select(*(has_value(c) for c in columns)).sql(dialect=dialect)


ROLES = [(name, role) for name, etype in sorted(ENTITY_TYPES.items()) for role in etype.roles]


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
@pytest.mark.parametrize("source", ["events", "my events", "_hunt1_src"])
@pytest.mark.parametrize(("etype", "role"), ROLES, ids=[f"{n}-{r.name}" for n, r in ROLES])
def test_filled_columns_query_is_sqlglots(
    etype: str, role: object, source: str, dialect: str
) -> None:
    columns = sorted(set(role.columns.values()))  # type: ignore[attr-defined]
    classes = role.classes  # type: ignore[attr-defined]
    assert filled_sql(source, classes, columns, dialect) == _sqlglot_filled(
        source, classes, columns, dialect
    )


def test_filled_sql_quotes_odd_names_and_has_no_class_test_without_classes() -> None:
    text = filled_sql("events", (), ['a"b', "it's"], "duckdb")
    assert text == _sqlglot_filled("events", (), ['a"b', "it's"], "duckdb")
    assert "class" not in text


def test_filled_columns_reads_the_columns_with_a_value() -> None:
    import pyarrow as pa

    store = DuckDBStore(":memory:")
    try:
        store.register("t", pa.table({"class": ["process", "file"], "a": [None, 1],
                                      "b": [2, None], 'c"d': [3, 3]}))  # fmt: skip

        role = Role("r", {"x": "a", "y": "b", "z": 'c"d'}, ("process",))
        assert filled_columns(store, "t", role) == {"b", 'c"d'}
    finally:
        store.close()
