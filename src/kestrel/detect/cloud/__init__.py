"""Cloud and AI-workload detectors: per-entity baselines (`kestrel.detect.baseline`) and the
sensitive-operation table, over CloudTrail API calls and GPU / workload metrics.

Each detector takes a batch and returns findings, keeps its learnt state in Polars frames
that the pipeline checkpoints (``state`` / ``load_state``), and is configured only by its
constructor (``clone`` makes a fresh one with the same configuration).
"""

from kestrel.detect.cloud.api_abuse import CloudAPIAbuseDetector
from kestrel.detect.cloud.common import StatefulDetector
from kestrel.detect.cloud.gpu_hijack import GPUHijackDetector
from kestrel.detect.cloud.instance_credentials import InstanceCredentialDetector
from kestrel.detect.cloud.new_behaviour import NewBehaviourDetector
from kestrel.detect.cloud.rogue_training import RogueTrainingDetector

CLOUD_DETECTORS: dict[str, type[StatefulDetector]] = {
    "gpu_hijack": GPUHijackDetector,
    "rogue_training": RogueTrainingDetector,
    "api_abuse": CloudAPIAbuseDetector,
    "new_behaviour": NewBehaviourDetector,
    "instance_credentials": InstanceCredentialDetector,
}

__all__ = [
    "CLOUD_DETECTORS",
    "CloudAPIAbuseDetector",
    "GPUHijackDetector",
    "InstanceCredentialDetector",
    "NewBehaviourDetector",
    "RogueTrainingDetector",
    "StatefulDetector",
]
