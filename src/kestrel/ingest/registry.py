"""The reader registry: format name → reader class (built-ins, then entry points)."""

from __future__ import annotations

from functools import cache

from kestrel import plugins
from kestrel.ingest.agent import AgentEnvelopeReader
from kestrel.ingest.base import Reader
from kestrel.ingest.cloudtrail import CloudTrailReader
from kestrel.ingest.evtx import EvtxReader
from kestrel.ingest.metrics import MetricsReader
from kestrel.ingest.winlog_json import WinlogJsonReader

READERS: dict[str, type[Reader]] = {
    "agent": AgentEnvelopeReader,
    "cloudtrail": CloudTrailReader,
    "evtx": EvtxReader,
    "metrics": MetricsReader,
    "winlog-json": WinlogJsonReader,
}


@cache
def readers() -> dict[str, type[Reader]]:
    """Built-in readers plus those third parties register under ``kestrel.readers``.

    Cached: scanning entry points costs milliseconds, and ingest asks once per source (an
    archive of many small files asks thousands of times). Installed plugins do not change
    while a process runs.
    """
    return plugins.load("readers", READERS)
