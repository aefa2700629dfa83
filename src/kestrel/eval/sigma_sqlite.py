"""pySigma's own SQLite backend as a second opinion on the Sigma engine (the Zircolite way:
one table ``logs`` with a column per source field, one query per rule).

SQLite is not Sigma: its ``=`` is case-sensitive (Sigma matching is not) and it compares a
number in a rule with the text ``"88"`` in a record as different types (Sigma compares
values). So a rule on which the two disagree is checked again on a *normalized* table (every
value lower-cased text, columns of TEXT affinity, the query's literals lower-cased): if
SQLite then agrees with Kestrel, the difference is one of those two and is explained; if
not, it is a real disagreement. Needs ``pysigma-backend-sqlite`` (a dev dependency).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from kestrel.detect.sigma.pipelines import EVENT_TYPES, Dispatch

Record = Mapping[str, Any]
"""One event as SQLite sees it: source field → value (EventData plus EventID, Channel ...)."""


@dataclass(slots=True)
class Agreement:
    """Per rule: the same events, different only by case / type, or really different."""

    same: list[str] = field(default_factory=list)
    explained: dict[str, tuple[int, int]] = field(default_factory=dict)  # (sqlite, kestrel)
    unexplained: dict[str, tuple[int, int]] = field(default_factory=dict)


Progress = Callable[[int, int], None]
"""(done, total): called now and then by the long loops (the 1,000,000-event bench)."""
_CHUNK = 50_000


def sqlite_table(
    records: Sequence[Record], normalized: bool = False, progress: Progress | None = None
) -> sqlite3.Connection:
    """The ``logs`` table (``row_id`` = position in ``records``); ``normalized``: lower-cased
    text in TEXT columns (see the module docstring). In memory, filled in chunks."""
    con = sqlite3.connect(":memory:")
    con.create_function("REGEXP", 2, _regexp, deterministic=True)
    fields = sorted({f.lower(): f for r in records for f in r}.values())  # names ignore case
    kind = " TEXT" if normalized else ""
    columns = ", ".join(f'"{f}"{kind}' for f in fields)
    con.execute(f"CREATE TABLE logs (row_id INTEGER, {columns})")
    insert = f"INSERT INTO logs VALUES ({', '.join('?' * (len(fields) + 1))})"
    for start in range(0, len(records), _CHUNK):
        part = records[start : start + _CHUNK]
        rows = [
            (start + i, *(_value(r.get(f), normalized) for f in fields)) for i, r in enumerate(part)
        ]
        con.executemany(insert, rows)
        if progress is not None:
            progress(start + len(part), len(records))
    con.commit()
    return con


def _value(value: Any, normalized: bool) -> Any:
    if value is None:
        return None
    if normalized:
        return str(value).lower()
    return value if isinstance(value, int | float) else str(value)


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def sqlite_queries(rules: Sequence[SigmaRule], dispatch: Mapping[str, Dispatch]) -> dict[str, str]:
    """Rule id → one query (pySigma's SQLite backend) restricted to the same events as the
    engine's dispatch (EventIDs; for the registry categories that share Sysmon's EventID 12,
    the EventType as well); rules the backend cannot convert are left out."""
    from sigma.backends.sqlite.sqlite import sqliteBackend

    backend, out = sqliteBackend(), {}  # type: ignore[no-untyped-call]
    for rule in rules:
        d = dispatch.get(str(rule.id))
        if d is None or d.never:
            continue
        try:
            (sql,) = backend.convert(SigmaCollection([rule]))
        except Exception:
            continue
        where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else "1=1"
        codes = ", ".join(str(c) for c in sorted(d.codes)) or "EventID"
        kinds = EVENT_TYPES.get(str(rule.logsource.category), ())
        if kinds:  # Sysmon 12 is both registry_add and registry_delete: EventType says which
            where = f"EventType IN ({', '.join(repr(k) for k in kinds)}) AND ({where})"
        out[str(rule.id)] = f"SELECT row_id FROM logs WHERE EventID IN ({codes}) AND ({where})"
    return out


def run_queries(
    con: sqlite3.Connection, queries: Mapping[str, str], progress: Progress | None = None
) -> dict[str, set[int]]:
    """Rule id → matched row ids; a query SQLite rejects is left out."""
    found: dict[str, set[int]] = {}
    for n, (rid, sql) in enumerate(queries.items(), 1):
        try:
            found[rid] = {r[0] for r in con.execute(sql)}
        except sqlite3.Error:
            continue
        finally:
            if progress is not None:
                progress(n, len(queries))
    return found


def lowered(sql: str) -> str:
    """The query with its string literals lower-cased (regular expressions left alone: ``\\S``
    is not ``\\s``)."""
    if "REGEXP" in sql:
        return sql
    return re.sub(r"'(?:[^']|'')*'", lambda m: m.group(0).lower(), sql)


def compare(
    kestrel: Mapping[str, set[int]],
    records: Sequence[Record],
    queries: Mapping[str, str],
    found: Mapping[str, set[int]],
    progress: Progress | None = None,
) -> Agreement:
    """Sort every rule SQLite ran into same / explained (case, type) / unexplained."""
    out = Agreement()
    differ = {rid: rows for rid, rows in found.items() if rows != kestrel.get(rid, set())}
    out.same = sorted(set(found) - set(differ))
    if not differ:
        return out
    con = sqlite_table(records, normalized=True, progress=progress)
    again = run_queries(con, {rid: lowered(queries[rid]) for rid in differ})
    for rid, rows in differ.items():
        mine = kestrel.get(rid, set())
        bucket = out.explained if again.get(rid) == mine else out.unexplained
        bucket[rid] = (len(rows), len(mine))
    return out
