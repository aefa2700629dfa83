"""The reader registry: format name → reader class (built-ins, then entry points)."""

from __future__ import annotations

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


def readers() -> dict[str, type[Reader]]:
    """Built-in readers plus those third parties register under ``kestrel.readers``."""
    return plugins.load("readers", READERS)
