"""The reader registry: format name → reader class (built-ins, then entry points)."""

from __future__ import annotations

from kestrel import plugins
from kestrel.ingest.agent import AgentEnvelopeReader
from kestrel.ingest.base import Reader
from kestrel.ingest.cloudtrail import CloudTrailReader
from kestrel.ingest.metrics import MetricsReader

READERS: dict[str, type[Reader]] = {
    "agent": AgentEnvelopeReader,
    "cloudtrail": CloudTrailReader,
    "metrics": MetricsReader,
}


def readers() -> dict[str, type[Reader]]:
    """Built-in readers plus those third parties register under ``kestrel.readers``."""
    return plugins.load("readers", READERS)
