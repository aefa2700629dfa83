"""Windows events as JSON: JSON Lines or JSON documents (arrays, or objects one after another)
in any of three shapes, told apart per record:

* NXLog / Logstash flat records (the OTRF data): ``Channel``, ``EventID``, ``SourceName``,
  ``Hostname``, ``@timestamp`` and the EventData fields side by side;
* Winlogbeat: ``{"@timestamp", "winlog": {"event_id", "channel", "provider_name",
  "computer_name", "event_data": {...}}}``;
* ``evtx_dump`` output: ``{"Event": {"System": ..., "EventData": ...}}``, often several
  pretty-printed objects in one file (the SigmaHQ regression ``.json`` files).

The ``evtx_dump`` records are EVTX records: they get source ``evtx`` and the id the `evtx`
reader gives the same record, so a record ingested both as ``.evtx`` and as its JSON dump is
stored once. Mapping to columns is `kestrel.ingest.windows`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from kestrel.config import BATCH_ROWS
from kestrel.ingest.base import Chunk, Source
from kestrel.ingest.framing import frame_json
from kestrel.ingest.windows import normalize


class WinlogJsonReader:
    """Reads Windows event JSON (NXLog, Winlogbeat, evtx_dump) into normalized events."""

    name: ClassVar[str] = "winlog-json"

    def read(self, source: Source) -> Iterator[Chunk]:
        for run in frame_json(source, BATCH_ROWS):
            yield normalize(run)
