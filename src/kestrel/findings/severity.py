"""Severity from the number and kind of signals, so every detector grades the same way.

One signal is medium, two high, three or more critical; a bare baseline deviation (one
signal of kind ``baseline`` and nothing else) is low, because a z-score alone is the weakest
evidence we have. A ``sensitive`` signal (a high-risk operation such as StopLogging) counts
twice: on its own it is already high.
"""

from __future__ import annotations

from collections.abc import Iterable

from kestrel.findings.model import Severity, Signal

WEIGHTS: dict[str, int] = {"baseline": 1, "rule": 1, "novelty": 1, "sensitive": 2, "context": 0}


def severity_for(signals: Iterable[Signal]) -> Severity:
    """The severity a set of signals earns.

    >>> severity_for([Signal("gpu_util.zscore", 3.1, 2.5, kind="baseline")])
    <Severity.LOW: 1>
    >>> severity_for([Signal("api.burst", 80, 50), Signal("api.regions", 7, 5)])
    <Severity.HIGH: 3>
    """
    kinds = [s.kind for s in signals]
    points = sum(WEIGHTS.get(k, 1) for k in kinds)
    if kinds and set(kinds) <= {"baseline", "context"} and points <= 1:
        return Severity.LOW
    if points <= 1:
        return Severity.MEDIUM
    return Severity.HIGH if points == 2 else Severity.CRITICAL
