"""Prometheus metrics of one API process: events in, stored, duplicate and rejected,
requests by outcome, stage latency, intake queue depth, and findings by severity.

Each app has its own `CollectorRegistry` (not the global one), so two apps in one test
process do not share counters. Findings are counted at scrape time from the findings
source, so the gauge is right even after a restart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kestrel.findings import Finding

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _FindingsCollector(Collector):
    """``kestrel_findings{severity, status}`` from the findings and their statuses."""

    def __init__(self, snapshot: Callable[[], list[tuple[Finding, str]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kestrel_findings",
            "Findings held, by severity and status",
            labels=["severity", "status"],
        )
        counts = Counter((str(f.severity), st) for f, st in self._snapshot())
        for (severity, st), n in sorted(counts.items()):
            family.add_metric([severity, st], n)
        yield family


class ApiMetrics:
    """The counters, histograms and gauges the API updates, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = PromCounter(
            "kestrel_events_received", "Records received on /api/v1/events", ["format"], registry=r
        )
        self.events_stored = PromCounter(
            "kestrel_events_stored", "Events new to the store", ["format"], registry=r
        )
        self.events_duplicate = PromCounter(
            "kestrel_events_duplicate", "Events the store already had", ["format"], registry=r
        )
        self.events_rejected = PromCounter(
            "kestrel_events_rejected", "Records rejected (bad data)", ["format"], registry=r
        )
        self.requests = PromCounter(
            "kestrel_intake_requests", "Intake requests by HTTP status", ["code"], registry=r
        )
        self.stage_seconds = Histogram(
            "kestrel_stage_seconds", "Time per pipeline stage and batch", ["stage"],
            buckets=_STAGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "kestrel_queue_depth", "Intake batches parsed and waiting for the store", registry=r
        )
        self.findings_new = PromCounter(
            "kestrel_findings_detected", "Findings reported by detection", ["severity"], registry=r
        )

    def watch_findings(self, snapshot: Callable[[], list[tuple[Finding, str]]]) -> None:
        """Count findings by severity and status at each scrape."""
        self.registry.register(_FindingsCollector(snapshot))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)
