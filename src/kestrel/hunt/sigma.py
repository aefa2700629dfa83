"""``GET … WHERE SIGMA 'rule'``: the events a Sigma rule matches, through the Sigma engine.

The rule (a path to a rule file, or a rule id looked up under ``$KESTREL_SIGMA_RULES``) is
loaded and compiled by `kestrel.detect.sigma`; the events of the hunt's source are read in
one query and matched by the engine's vectorized evaluation. The matching event ids become
a small registered table that the GET's WHERE tests with ``event_id IN (…)``, so the rest of
the hunt stays SQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from kestrel.errors import HuntError
from kestrel.hunt import ast
from kestrel.store import Store


def matched_events(store: Store, source: str, rule: str, table: str, span: ast.Span) -> None:
    """Register ``table`` (column event_id): the events of ``source`` that ``rule`` matches."""
    from kestrel.detect.sigma import SigmaEngine, compile_rules
    from kestrel.detect.sigma.frame import ROW
    from kestrel.events import SCHEMA

    rules = _rules(rule, span)
    compiled, issues = compile_rules(rules)
    if not compiled:
        reason = issues[0].reason if issues else "no rule"
        raise HuntError(f"Sigma rule {rule!r} cannot be used: {reason}", span.line, span.col)
    events = store.query(f'SELECT * FROM "{source}"').select(SCHEMA.names).cast(SCHEMA)
    rows = SigmaEngine(compiled).match(events).get_column(ROW).unique().to_list()
    ids = events.column("event_id").take(pa.array(rows, pa.uint32())) if rows else []
    store.register(table, pa.table({"event_id": pa.array(ids, pa.string())}))


def _rules(rule: str, span: ast.Span) -> list[Any]:
    from kestrel.detect.sigma import load_rules

    path = Path(rule).expanduser()
    if path.suffix in (".yml", ".yaml"):
        if not path.is_file():
            raise HuntError(f"no Sigma rule file {rule}", span.line, span.col)
        return list(load_rules([path]).rules)
    folder = os.environ.get("KESTREL_SIGMA_RULES")
    if not folder:
        raise HuntError(
            f"Sigma rule {rule!r}: give a rule file path, or set KESTREL_SIGMA_RULES",
            span.line, span.col,
        )  # fmt: skip
    found = [r for r in load_rules([Path(folder)]).rules if str(r.id) == rule or r.title == rule]
    if not found:
        raise HuntError(f"no Sigma rule {rule!r} under {folder}", span.line, span.col)
    return found
