"""FIND over a whole GET (no WHERE, time range or LIMIT) matches its input role's key with
``IS NOT NULL`` instead of ``IN`` the variable's keys (`compile._holds_every_key`): the
entities found must be those the semi-join finds."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from tests.hunt.conftest import T0

from kestrel.hunt import compile as compile_module
from kestrel.hunt.compile import _key_sql
from kestrel.hunt.entities import ENTITY_TYPES
from kestrel.hunt.session import Session
from kestrel.store import DuckDBStore

_HUNT = (
    "p = GET process\nq = FIND process CREATED p\n"
    "p2 = GET process\nk = FIND process CHILD OF p2\n"
    "p3 = GET process\nr = FIND process PARENT OF p3\n"
    "p4 = GET process\nn = FIND network-traffic CREATED BY p4\n"
    "p5 = GET process\nf = FIND file LINKED p5\n"
    "p6 = GET process\nu = FIND user-account OWNED p6\n"
    "w = GET process WHERE host = 'h1'\nwq = FIND process CREATED w\n"
    "t = GET process START t'2024-05-01T12:01:00Z' STOP t'2024-05-01T12:08:00Z'\n"
    "tq = FIND process CREATED t"
)
_FOUND = ("q", "k", "r", "n", "f", "u", "wq", "tq")


def _found(store: DuckDBStore) -> tuple[list[list[Any]], dict[str, str]]:
    with Session(store, now=T0.replace(hour=13)) as s:
        s.execute(_HUNT)
        rows = [sorted(s.variable(v).to_pylist(), key=repr) for v in _FOUND]
        return rows, {v: s.info(v).sql for v in _FOUND}


def test_find_over_a_whole_get_equals_the_semi_join(
    hunt_store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    shortcut, sql = _found(hunt_store)
    # taken where it holds (the parents of every process), not elsewhere
    # (`key_query`'s subquery is called "keys")
    assert "AS keys" not in sql["q"] and "CAST(process_guid" not in sql["q"], sql["q"]
    for name in ("k", "wq", "tq"):  # CHILD OF reads more classes; a WHERE; a time range
        assert "AS keys" in sql[name], (name, sql[name])
    monkeypatch.setattr(compile_module, "_holds_every_key", lambda *a: False)
    semi_join, _ = _found(hunt_store)
    assert shortcut == semi_join
    assert all(shortcut[:3]) and shortcut[0] != shortcut[1]


@pytest.mark.parametrize(
    "name", sorted(n for n, t in ENTITY_TYPES.items() if t.key_null_iff_no_required)
)
def test_key_is_null_without_a_required_attribute(name: str) -> None:
    # the claim `_holds_every_key` rests on: on a row with every other column of the role
    # set and none of the required ones, the key is NULL (so a non-NULL key means the row
    # mentions the entity and is one of the GET's rows); with one required column set it is
    # not (so `_mentions` stands for `key IS NOT NULL`)
    etype = ENTITY_TYPES[name]
    assert etype.key_null_iff_no_required
    for role in etype.roles:
        required = {role.columns[a] for a in etype.required if a in role.columns}
        key = _key_sql(etype, role).sql(dialect="duckdb")
        con = duckdb.connect()
        columns = sorted(set(role.columns.values()))
        values = ", ".join(
            f"CAST(NULL AS TEXT) AS {c}" if c in required else f"CAST('7' AS TEXT) AS {c}"
            for c in columns
        )
        got = con.sql(f"SELECT {key} FROM (SELECT {values})").fetchall()
        assert got == [(None,)], (name, role.name)
        for one in required:  # and back: one required attribute set, the key is not NULL
            values = ", ".join(
                f"CAST('7' AS TEXT) AS {c}" if c == one else f"CAST(NULL AS TEXT) AS {c}"
                for c in columns
            )
            got = con.sql(f"SELECT {key} FROM (SELECT {values})").fetchall()
            assert got != [(None,)], (name, role.name, one)
        con.close()
