"""The `FindingsSource` over the store's ``findings`` table, which the pipeline writes
(`kestrel.pipeline.save_findings`). This is what `kestrel serve` reads by default."""

from __future__ import annotations

from kestrel.api.deps import FindingQuery, matches
from kestrel.findings import Finding
from kestrel.pipeline import load_findings
from kestrel.pipeline.persist import to_finding
from kestrel.store import Store
from kestrel.store.findings import FindingsTable


class StoreFindings:
    """Findings as the pipeline stored them; filters other than severity and time are
    applied here (the table keeps techniques as JSON text)."""

    def __init__(self, store: Store) -> None:
        self._table = FindingsTable(store)  # creates the table on a fresh store
        self._store = store

    def findings(self, query: FindingQuery) -> list[Finding]:
        """Stored findings matching ``query``, newest last seen first."""
        found = load_findings(self._store, query.min_severity, query.start)
        kept = [f for f in found if matches(f, query)]
        return sorted(kept, key=lambda f: (f.last_seen, f.finding_id), reverse=True)

    def folded(self) -> dict[str, list[str]]:
        """Each finding that merges folded others into → the ids it took in (through
        chains of merges), for statuses recorded under those ids."""
        aliases = self._table.aliases()
        out: dict[str, list[str]] = {}
        for old in aliases:
            survivor = old
            for _ in range(16):  # the same bound as FindingsTable.resolve
                if survivor not in aliases:
                    break
                survivor = aliases[survivor]
            out.setdefault(survivor, []).append(old)
        return out

    def finding(self, finding_id: str) -> Finding | None:
        """One stored finding by id, or None; an id that a merge folded into another
        finding answers with that finding (whose `finding_id` is then the surviving id)."""
        rows = self._table.select("finding_id = ?", [self._table.resolve(finding_id)], limit=1)
        return to_finding(rows[0]) if rows else None
