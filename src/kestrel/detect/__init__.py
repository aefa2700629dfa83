"""Stage 3, detect: detectors take batches of normalized events and return `Finding`s.

Contract: a detector never touches the store or the pipeline (import-linter enforces it);
its state, if any, is handed to the pipeline to checkpoint. Every registered detector is in
`DETECTORS` below; third parties add theirs under the ``kestrel.detectors`` entry point.
"""

from kestrel.detect.base import Detector
from kestrel.detect.cloud import CLOUD_DETECTORS
from kestrel.detect.endpoint import EndpointEnsembleDetector
from kestrel.detect.intel import ThreatIntelDetector
from kestrel.detect.sigma import SigmaDetector

DETECTORS: dict[str, type[Detector]] = {
    "sigma": SigmaDetector,
    **CLOUD_DETECTORS,
    "endpoint": EndpointEnsembleDetector,
    "intel": ThreatIntelDetector,
}

__all__ = ["DETECTORS", "Detector"]
