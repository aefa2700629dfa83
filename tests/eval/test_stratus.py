"""The real labelled data: Stratus Red Team detonations (all positive)."""

from __future__ import annotations

import pytest

from kestrel.eval.cloud import evaluate
from kestrel.eval.datasets import load, scrub
from kestrel.pipeline import default_detectors


def _cloud():
    return default_detectors(("sigma",))


@pytest.mark.datasets
def test_stratus_technique_recall(datasets) -> None:
    result = evaluate("stratus", load("stratus", datasets), _cloud).as_dict()
    assert result["technique"]["recall"] >= 0.9
    assert result["event"]["fp"] == 0


@pytest.mark.datasets
def test_results_do_not_depend_on_harness_strings(datasets, monkeypatch) -> None:
    groups = load("stratus", datasets)
    scrubbed = evaluate("s", groups, _cloud).as_dict()
    monkeypatch.setattr("kestrel.eval.cloud.scrub", lambda raw: raw)
    raw = evaluate("s", groups, _cloud).as_dict()
    assert raw["event"] == scrubbed["event"]
    assert raw["technique"] == scrubbed["technique"]
    assert b"stratus" in groups[0].records[0].raw.lower()
    assert b"stratus" not in scrub(groups[0].records[0].raw).lower()
