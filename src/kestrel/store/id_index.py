"""An in-memory filter of the event ids a store holds: 64-bit keys in sorted NumPy arrays.

Why: the API checks every request's ids against the store for its counts, and any DuckDB
query costs ~0.7 ms of CPU in its Python layer before it reads a row (2.5 ms for the span
query with 150,000 rows stored), 2.6-3.5 us per event of a 1,000-event request
(bench/RESULTS.md, API). Nearly every id an agent sends is new, so a filter that answers
"certainly not stored" without DuckDB removes that query; an id the filter may hold (a key
hit: a resend, or two ids sharing 64 bits) is still checked exactly in DuckDB.

A key is the id's first 16 hex digits (an ``event_id`` is 32: `kestrel.events.event_id`);
an id of another length is keyed by Python's ``hash`` (stable within the process, which is
where the filter lives). The filter never forgets: an id stored and later removed (no path
does that today) would only cost an exact check. Keys sit in a few sorted arrays, merged
when a newer one grows as large as the one before it (so a lookup searches O(log n) arrays
and an insert costs O(log n) amortised copies); a lookup is one `searchsorted` per array.
Past `MAX_KEYS` the filter turns itself off and every check goes to the store (8 bytes per
stored event: 256 MB at the limit).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

MAX_KEYS = 32_000_000
# A bitmap over the keys' top `_BITS_LOG` bits answers most lookups before any array is
# searched (one fancy index per request; 2^27 bits are 16 MB, and at 1,000,000 stored ids
# 0.75 % of new ids still hit a bit): searching 1,000 new keys in a 1,000,000-key filter
# cost ~1 us per event, the bitmap takes ~0.1.
_BITS_LOG = 27
_ID_CHARS = 32
_KEY_CHARS = 16
_SHIFTS = np.arange(4 * (_KEY_CHARS - 1), -1, -4, dtype=np.uint64)


def _nibbles() -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Byte → hex digit value; any other byte keeps its low four bits (still a key)."""
    table = np.arange(256, dtype=np.uint64) & np.uint64(15)
    for i, c in enumerate(b"0123456789abcdef"):
        table[c] = i
    for i, c in enumerate(b"ABCDEF"):
        table[c] = 10 + i
    return table


_NIBBLE = _nibbles()


def id_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The 64-bit key of each id: its first 16 hex digits when every id is 32 characters
    long (read straight from the Arrow buffer), else Python's ``hash`` of each."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(arr)
    if n == 0:
        return np.empty(0, np.uint64)
    if arr.null_count == 0 and pa.types.is_string(arr.type):
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, np.int32, n + 1, arr.offset * 4)
        lo, hi = int(offsets[0]), int(offsets[-1])
        if hi - lo == _ID_CHARS * n and bool(np.all(np.diff(offsets) == _ID_CHARS)):
            data = np.frombuffer(data_buf, np.uint8, hi - lo, lo)
            digits = _NIBBLE[data.reshape(n, _ID_CHARS)[:, :_KEY_CHARS]]
            keys: np.ndarray[Any, np.dtype[np.uint64]] = np.bitwise_or.reduce(
                digits << _SHIFTS, axis=1
            )
            return keys
    mask = (1 << 64) - 1
    return np.fromiter((hash(i) & mask for i in arr.to_pylist()), np.uint64, n)


class IdIndex:
    """The keys of the ids stored; off until `start` has loaded them (then every id may
    be stored), and off again past `MAX_KEYS`."""

    def __init__(self) -> None:
        # None: off (ids are not recorded); a tuple: the sorted key arrays, newest last
        self._levels: tuple[np.ndarray[Any, np.dtype[np.uint64]], ...] | None = None
        self._ready = False  # `start` has loaded every stored id: lookups may say "new"
        self._keys = 0
        self._bits = np.zeros(0, np.uint8)  # set before a key's level is published
        self._lock = threading.Lock()  # writers; readers take `_levels` as one tuple

    @property
    def enabled(self) -> bool:
        """Whether lookups answer from the filter (else every id may be stored)."""
        return self._ready and self._levels is not None

    def start(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Turn the filter on with the ids of ``batches`` (the store's event_id column):
        ids added meanwhile (`add`, after a commit) are recorded too, and lookups use the
        filter only once every stored id is in."""
        with self._lock:
            self._levels, self._keys, self._ready = (), 0, False
            self._bits = np.zeros(1 << (_BITS_LOG - 3), np.uint8)
        for batch in batches:
            self.add(batch.column(0))
        with self._lock:
            self._ready = self._levels is not None

    def add(self, ids: pa.Array | pa.ChunkedArray) -> None:
        """Remember ``ids`` (called after they are committed)."""
        if self._levels is None or len(ids) == 0:
            return
        keys = np.sort(id_keys(ids))
        with self._lock:
            if self._levels is None:
                return
            if self._keys + len(keys) > MAX_KEYS:
                self._levels, self._keys, self._ready = None, 0, False
                self._bits = np.zeros(0, np.uint8)
                return
            slots = keys >> np.uint64(64 - _BITS_LOG)
            np.bitwise_or.at(self._bits, slots >> np.uint64(3), _bit(slots))
            levels = list(self._levels)
            while levels and len(levels[-1]) <= len(keys):
                keys = np.sort(np.concatenate((levels.pop(), keys)))
            self._levels = (*levels, keys)
            self._keys += len(ids)

    def maybe_stored(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Per id, whether the store may hold it (False: it certainly does not)."""
        levels, bits = self._levels, self._bits
        if levels is None or not self._ready or len(bits) == 0:
            return np.ones(len(ids), np.bool_)
        keys = id_keys(ids)
        hit = np.zeros(len(keys), np.bool_)
        slots = keys >> np.uint64(64 - _BITS_LOG)
        (maybe,) = np.nonzero(bits[slots >> np.uint64(3)] & _bit(slots))
        if len(maybe):
            hit[maybe] = _search(levels, keys[maybe])
        return hit


def _bit(slots: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Each slot's bit within its byte of the bitmap."""
    shifts = (slots & np.uint64(7)).astype(np.uint8)
    bits: np.ndarray[Any, np.dtype[np.uint8]] = np.left_shift(np.uint8(1), shifts)
    return bits


def _search(
    levels: tuple[np.ndarray[Any, np.dtype[np.uint64]], ...],
    keys: np.ndarray[Any, np.dtype[np.uint64]],
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per key, whether one of the sorted ``levels`` holds it."""
    # searched in key order: neighbouring searches touch the same cache lines (half
    # the CPU of searching 1,000 keys in a 1,000,000-key array in request order)
    order = np.argsort(keys)
    keys = keys[order]
    found = np.zeros(len(keys), np.bool_)
    for level in levels:
        at = np.minimum(np.searchsorted(level, keys), len(level) - 1)
        found |= level[at] == keys
    hit = np.empty(len(keys), np.bool_)
    hit[order] = found
    return hit
