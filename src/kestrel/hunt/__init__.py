"""The hunting language: hunt-flows of GET, FIND, DISP … compiled to SQL over the store.

Contract: text goes in (`parse` → `kestrel.hunt.ast`), one SQL SELECT per command comes out
(`kestrel.hunt.compile`, sqlglot, for the store's dialect), and a `Session` materializes
each variable as a temporary table in the store and returns display objects. Events never
pass through Python on the way: filters, relations, grouping and sorting run in the engine.
Kestrel 1.x (STIX) and 2.x (OCSF) attribute spellings are accepted; see docs/hunting.md.
Imports here stay lazy so that `kestrel hunt` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kestrel.hunt.parser import parse
    from kestrel.hunt.session import Session

__all__ = ["Session", "parse"]


def __getattr__(name: str) -> Any:
    if name == "Session":
        from kestrel.hunt.session import Session

        return Session
    if name == "parse":
        from kestrel.hunt.parser import parse

        return parse
    raise AttributeError(name)
