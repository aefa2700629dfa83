"""Stage 1, ingest: bytes → batches of normalized events.

Contract: a reader takes a `Source` (a file or archive member, already decompressed) and
yields `Chunk`s: a batch conforming to `kestrel.events.SCHEMA`, the records it set aside
(`Rejected`, each with its `SourcePosition` and a reason), and how many records it read.
A bad record never stops a reader; only a source that cannot be read at all raises
`SourceError`. Readers never write to the store themselves; `ingest_paths` does.
"""

from kestrel.ingest.base import Chunk, Reader, Rejected, Source, SourcePosition
from kestrel.ingest.registry import READERS, readers
from kestrel.ingest.run import FormatCounts, IngestReport, ingest_paths, read_source

__all__ = [
    "READERS",
    "Chunk",
    "FormatCounts",
    "IngestReport",
    "Reader",
    "Rejected",
    "Source",
    "SourcePosition",
    "ingest_paths",
    "read_source",
    "readers",
]
