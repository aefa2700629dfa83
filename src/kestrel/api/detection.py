"""Detection on intake: the embedded runner on a timer inside `kestrel serve`, so events an
agent sends become findings without anyone running `kestrel detect`.

Why a timer and not per request: the runner reads the store from its cursor in time slices
and merges with stored findings; running it once every few seconds over whatever arrived
costs one pass per interval instead of one per request, and intake keeps its throughput.
The run holds the store lock (one DuckDB connection serves the whole process), so intake
waits for it; a failing run is logged and retried on the next tick, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter

from fastapi.concurrency import run_in_threadpool

from kestrel.api import rules
from kestrel.api.deps import ApiState
from kestrel.detect import Detector
from kestrel.detect.sigma import SigmaDetector
from kestrel.events import Batch
from kestrel.pipeline import RunReport, default_detectors, run_detection

log = logging.getLogger(__name__)
Enrich = Callable[[Batch], Batch]


@dataclass
class DetectionLoop:
    """Runs detection every ``every`` seconds until `stop`; `runs` counts finished runs."""

    state: ApiState
    every: float
    enrich: Enrich | None = None
    detectors: Mapping[str, Detector] = field(default_factory=default_detectors)
    runs: int = 0
    last: RunReport | None = None
    _sigma_sets: tuple[str, ...] | None = None  # the rule sets the Sigma detector loaded
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop (the app's lifespan)."""
        self._task = asyncio.create_task(self._loop(), name="kestrel-detect")

    async def stop(self) -> None:
        """Let the current run finish (it holds the store), then end the loop."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await run_in_threadpool(self.run_once)
            except Exception:  # a bad run must not take the server down; the next may pass
                log.exception("background detection failed; retrying in %s s", self.every)
            await self._sleep()

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):  # the interval passed: run again
            await asyncio.wait_for(self._stop.wait(), self.every)

    def run_once(self) -> RunReport:
        """One run over the events stored since the last, under the store lock."""
        started = perf_counter()
        self._follow_rule_switches()
        with self.state.lock:
            report = run_detection(self.state.store, self.detectors, enrich=self.enrich)
        metrics = self.state.metrics
        metrics.stage_seconds.labels("detect").observe(perf_counter() - started)
        for f in report.findings:
            metrics.findings_new.labels(str(f.severity)).inc()
        self.runs, self.last = self.runs + 1, report
        return report

    def _follow_rule_switches(self) -> None:
        """Once the ``sigma.rule_sets`` policy is set, rebuild the Sigma detector whenever it
        changes which sets are on (a new detector compiles its rules once). None on drops
        it: a detector given no paths would fall back to every set in $KESTREL_SIGMA_RULES."""
        if not rules.is_set(self.state):
            return  # never switched: the detectors stay as configured
        wanted = rules.enabled(self.state)
        if wanted == self._sigma_sets:
            return
        detectors = {k: v for k, v in self.detectors.items() if k != "sigma"}
        if wanted:
            detectors["sigma"] = SigmaDetector(wanted)
        self.detectors, self._sigma_sets = detectors, wanted
