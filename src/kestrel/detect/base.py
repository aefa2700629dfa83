"""The detector contract: batches in, findings out."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from kestrel.events import Batch
from kestrel.findings import Finding


@runtime_checkable
class Detector(Protocol):
    """Turns a batch of normalized events into findings. May keep state between batches
    (checkpointed by the pipeline, never written to the store by the detector itself).
    Configuration is the constructor's arguments, so ``repr`` shows what runs."""

    name: ClassVar[str]

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for this batch (may be empty)."""
        ...
