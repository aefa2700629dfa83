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


class FrameMemo:
    """Answers already known, as one Polars frame keyed by ``key``: a batch is answered by
    one join, and only the keys the memo has not seen go through Python.

    Why beside `MemoryCache`: the same few thousand addresses or hashes recur batch after
    batch; asking a dict once per unique value per batch costs ~1 µs each in Python (tens
    of ms per 20k batch), a join costs nothing per row. Bounded by ``max_rows``: past it the
    memo starts again from the newest answers (the per-value caches behind it still hold).

    >>> import polars as pl
    >>> m = FrameMemo("k", {"k": pl.String, "v": pl.Int64})
    >>> m.add([("a", 1)]); m.missing(pl.Series(["a", "b", None])).to_list()
    ['b']
    >>> m.join(pl.Series(["b", "a"])).get_column("v").to_list()
    [None, 1]
    """

    def __init__(self, key: str, schema: dict[str, Any], max_rows: int = 1_000_000) -> None:
        import polars as pl

        self.key, self.schema, self.max_rows = key, schema, max_rows
        self.frame = pl.DataFrame(schema=schema)

    def missing(self, keys: Any) -> Any:
        """The distinct non-null ``keys`` (a Series) the memo holds no answer for."""
        uniq = keys.drop_nulls().unique()
        return uniq.filter(~uniq.is_in(self.frame.get_column(self.key).implode()))

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Remember answers (tuples in the schema's column order)."""
        import polars as pl

        if not rows:
            return
        new = pl.DataFrame(rows, schema=self.schema, orient="row")
        full = self.frame.height + new.height > self.max_rows
        self.frame = new if full else pl.concat([self.frame, new])

    def join(self, keys: Any) -> Any:
        """One row per key, in order, with the answer columns (null where unknown)."""
        frame = keys.alias(self.key).to_frame()
        return frame.join(self.frame, on=self.key, how="left", maintain_order="left")
