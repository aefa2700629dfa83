"""The enricher contract and the stage that runs enrichers over a batch.

An enricher takes a batch and returns the same rows with some enrichment columns filled
(`kestrel.events.schema`, section "enrichment"). It never adds or drops rows and never
reorders them, so enrichers compose in any order and the stage is a plain fold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import pyarrow as pa

from kestrel.events import SCHEMA, Batch


@runtime_checkable
class Enricher(Protocol):
    """Fills some enrichment columns of a batch. Configuration is the constructor."""

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]  # the schema columns this enricher fills

    def enrich(self, batch: Batch) -> Batch:
        """The batch with this enricher's columns filled; rows unchanged in number and order."""
        ...


def set_columns(batch: Batch, values: Mapping[str, pa.Array]) -> Batch:
    """Replace whole columns by name, cast to the schema's type (the batch keeps `SCHEMA`)."""
    for name, array in values.items():
        i = batch.schema.get_field_index(name)
        want = SCHEMA.field(name).type
        batch = batch.set_column(i, name, array if array.type == want else array.cast(want))
    return batch


def fill_nulls(batch: Batch, values: Mapping[str, pa.Array]) -> Batch:
    """Like `set_columns`, but keep values already present (an earlier enricher's match wins)."""
    import pyarrow.compute as pc

    merged = {
        name: pc.coalesce(batch.column(name), arr.cast(SCHEMA.field(name).type))
        for name, arr in values.items()
    }
    return set_columns(batch, merged)


@dataclass
class EnrichStage:
    """Run enrichers in order, then the threat score: ``stage(batch) -> batch``.

    Why a fold over a list: each enricher is optional and configured in the policy; the stage
    knows none of them by name. ``score`` is last because it reads the other columns.
    """

    enrichers: Sequence[Enricher] = field(default_factory=list)
    score: bool = True

    def __call__(self, batch: Batch) -> Batch:
        from kestrel.enrich.score import with_threat_score

        for enricher in self.enrichers:
            batch = enricher.enrich(batch)
        return with_threat_score(batch) if self.score else batch
