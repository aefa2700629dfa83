"""Endpoint analytics: rule signals + IsolationForest + per-agent streaming baseline, weighed
into one 0-100 score per event (0.4 / 0.3 / 0.3), findings from 50 (high 65, critical 80).

Batches in, findings out: this package never touches the store or the pipeline.
"""

from kestrel.detect.endpoint.ensemble import EndpointEnsembleDetector
from kestrel.detect.endpoint.features import FEATURES, WindowCounter
from kestrel.detect.endpoint.models import AgentBaseline, IsolationModel
from kestrel.detect.endpoint.rules import RULES, EndpointRule, rule_hits

__all__ = [
    "FEATURES",
    "RULES",
    "AgentBaseline",
    "EndpointEnsembleDetector",
    "EndpointRule",
    "IsolationModel",
    "WindowCounter",
    "rule_hits",
]
