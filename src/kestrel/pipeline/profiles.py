"""Entity profiles as people read them: the rows the runner keeps in the store
(`kestrel.store.profiles`) turned into `kestrel.detect.profile.describe` dictionaries."""

from __future__ import annotations

from typing import Any

from kestrel.detect.profile import describe
from kestrel.store import Store
from kestrel.store.profiles import ProfileTable


def entity_profiles(store: Store, entity_type: str | None = None) -> list[dict[str, Any]]:
    """Every profiled entity (busiest first), without its per-operation detail."""
    return [describe(r, []) for r in ProfileTable(store).rows(entity_type)]


def entity_profile(store: Store, entity: str) -> dict[str, Any] | None:
    """One entity's full profile; ``entity`` is its id or ``type:id``. None if unknown."""
    table = ProfileTable(store)
    row, ops = table.one(entity)
    if row is None and ":" in entity:
        etype, _, eid = entity.partition(":")
        row, ops = table.one(eid)
        row = row if row and row["entity_type"] == etype else None
    return None if row is None else describe(row, ops)
