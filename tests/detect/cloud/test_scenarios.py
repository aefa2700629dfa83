"""Each cloud detector fires on its generated scenario and stays silent on normal traffic."""

from __future__ import annotations

from typing import Any

import pytest

from kestrel.eval.cloud import evaluate
from kestrel.eval.datasets import generated
from kestrel.pipeline import default_detectors


def _cloud():
    return default_detectors(("sigma",))


@pytest.fixture(scope="module")
def normal() -> dict[str, Any]:
    return evaluate("n", [generated("normal", 24, 7)], _cloud).as_dict()


@pytest.mark.parametrize(
    ("scenario", "detector"),
    [("gpu_hijack", "gpu_hijack"), ("rogue_training", "rogue_training"),
     ("api_abuse", "api_abuse"), ("api_abuse", "new_behaviour")],
)  # fmt: skip
def test_detector_fires_on_its_scenario(scenario: str, detector: str) -> None:
    result = evaluate(scenario, [generated(scenario, 24, 7)], _cloud).as_dict()
    assert result["by_detector"][detector]["tp"] > 0
    assert result["event"]["fp"] == 0


def test_silent_on_a_normal_day(normal: dict[str, Any]) -> None:
    assert normal["false_positives"] == []
    assert normal["by_detector"] == {}
