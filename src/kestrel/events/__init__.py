"""The normalized event schema: the one data type every Kestrel stage exchanges.

Contract: a *batch* is a `pyarrow.Table` whose schema is exactly `SCHEMA` (one flat row per
event, OCSF-aligned class names in ``class``, the untouched source record in ``raw``, a
deterministic ``event_id``). Stages take batches and return batches or findings; none of them
keeps one Python object per event on the hot path. This package does no I/O.
"""

from kestrel.events.batch import Batch, empty_batch, make_batch, parse_times, utf8_column
from kestrel.events.classes import EVENT_CLASSES, EventClass
from kestrel.events.ids import event_id
from kestrel.events.schema import COLUMN_NAMES, COLUMNS, REQUIRED, SCHEMA, Column

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "EVENT_CLASSES",
    "REQUIRED",
    "SCHEMA",
    "Batch",
    "Column",
    "EventClass",
    "empty_batch",
    "event_id",
    "make_batch",
    "parse_times",
    "utf8_column",
]
