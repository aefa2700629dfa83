"""What every record-by-record reader does at the end of a run: parse the times in one
vectorized cast, reject the records whose time does not parse, add the constant columns and
assemble the batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from kestrel.events import make_batch, parse_times, utf8_column
from kestrel.ingest.base import Chunk, Rejected
from kestrel.ingest.framing import RawRecords


def finish_chunk(
    cols: dict[str, list[Any]],
    kept: list[int],
    rejected: list[Rejected],
    run: RawRecords,
    constants: Mapping[str, Any],
) -> Chunk:
    """Build the chunk for ``run`` from per-column lists.

    Args:
        cols: column name → values, one per kept record; must include ``time`` (ISO strings,
            or a timestamp array with no invalid value) and ``raw`` (canonical bytes, the fast
            path, or str).
        kept: for each kept record, its index in ``run`` (for positions of late rejects).
        rejected: records already set aside for this run.
        run: the framed records the columns came from.
        constants: columns with one value for the whole run (``source``, ``entity_type`` ...).
    """
    # A reader that built the timestamps itself (exact, all valid) hands them as an array.
    given = cols["time"]
    times, bad = (given, []) if isinstance(given, pa.Array) else parse_times(given)
    if bad:
        bad_set = set(bad)
        for i in bad:
            reason = f"unparseable time {cols['time'][i]!r}"
            rejected.append(Rejected.of(run.position(kept[i]), reason, cols["raw"][i]))
        cols = {k: [v for j, v in enumerate(vs) if j not in bad_set] for k, vs in cols.items()}
        times, _ = parse_times(cols["time"])
    n = len(cols["raw"])
    raws = cols["raw"]
    raw = utf8_column(raws) if raws and isinstance(raws[0], bytes) else raws
    data: dict[str, Any] = dict(cols, time=times, raw=raw)
    data.update({name: [value] * n for name, value in constants.items()})
    return Chunk(make_batch(data, n), rejected, run.count)
