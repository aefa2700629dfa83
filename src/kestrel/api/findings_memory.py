"""An in-memory `FindingsSource`: the API's findings until the pipeline persists them, and
the implementation tests and the live scenario use (an in-package fake, not a mock)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from kestrel.api.deps import FindingQuery, matches
from kestrel.findings import Finding


class MemoryFindings:
    """Findings kept in a dict by ``finding_id``; adding the same finding twice keeps one."""

    def __init__(self, findings: Iterable[Finding] = ()) -> None:
        self._by_id: dict[str, Finding] = {}
        self._lock = threading.Lock()
        self.add(findings)

    def add(self, findings: Iterable[Finding]) -> int:
        """Keep these findings; returns how many were new."""
        with self._lock:
            before = len(self._by_id)
            for f in findings:
                self._by_id[f.finding_id] = f
            return len(self._by_id) - before

    def findings(self, query: FindingQuery) -> list[Finding]:
        """Findings matching ``query``, newest last seen first."""
        with self._lock:
            found = [f for f in self._by_id.values() if matches(f, query)]
        return sorted(found, key=lambda f: (f.last_seen, f.finding_id), reverse=True)

    def finding(self, finding_id: str) -> Finding | None:
        """One finding by id, or None."""
        with self._lock:
            return self._by_id.get(finding_id)
