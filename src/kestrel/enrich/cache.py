"""Caches for enrichers: an in-memory LRU and an on-disk key-value store with expiry.

Why two: YARA results and GeoIP answers are cheap to recompute and only need to survive a
process (LRU); reputation answers cost an API quota and must survive restarts (SQLite file,
one row per key, written in a transaction so a crash never leaves a torn entry). Both share
the two-method `Cache` contract, so an enricher takes whichever the policy gives it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Cache(Protocol):
    """Key → JSON-serialisable value."""

    def get(self, key: str) -> Any | None:
        """The cached value, or None when absent or expired."""
        ...

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        ...


class MemoryCache:
    """Least-recently-used, bounded by entry count.

    >>> c = MemoryCache(maxsize=1); c.put("a", 1); c.put("b", 2); c.get("a"), c.get("b")
    (None, 2)
    """

    def __init__(self, maxsize: int = 100_000) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> Any | None:
        """The value, refreshed as most recently used."""
        if key not in self._data:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key: str, value: Any) -> None:
        """Store, evicting the least recently used entry past ``maxsize``."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class DiskCache:
    """SQLite-backed cache with a time to live; the clock is injectable for tests."""

    def __init__(
        self, path: Path, ttl_seconds: float = 7 * 86400, clock: Callable[[], float] = time.time
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl, self._clock = ttl_seconds, clock
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, at REAL, value TEXT)"
        )

    def get(self, key: str) -> Any | None:
        """The value if stored less than ``ttl_seconds`` ago."""
        row = self._db.execute("SELECT at, value FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None or self._clock() - row[0] > self.ttl:
            return None
        return json.loads(row[1])

    def put(self, key: str, value: Any) -> None:
        """Store (replacing) with the current time."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO cache VALUES (?, ?, ?)",
                (key, self._clock(), json.dumps(value)),
            )

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()
