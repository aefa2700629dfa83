"""`ThreatIntelDetector`: a finding wherever enrichment found known-bad evidence.

Why a detector of its own and not only a rule inside the endpoint ensemble: the ensemble
weighs its rule part by 0.4, so an event matching a known-bad hash or C2 address scores 24
from the rule alone and alerts only if the anomaly models agree. A feed match is evidence
by itself (someone already saw this indicator in an attack), so it is reported as it is,
on every event class (an EDR process, a CloudTrail caller address, a DNS query), with the
indicator, its type, its feed and the column it matched as the finding's signals.

One finding per entity and window (``window_minutes``), from the enrichment columns only:
``ioc_*`` (`kestrel.enrich.ioc`), ``yara_rules``, ``rep_malicious``, ``threat_score``.
Events below ``min_score`` are ignored (40 by default: a lone file-name match, 25, is too
weak to report; a hash, URL, address, domain or YARA rule is not). Severity from the
highest threat score: medium, high at 60, critical at 80.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Severity, Signal

_COLUMNS = ("event_id", "time", "agent_id", "host", "entity_type", "entity_id", "ioc_indicator",
            "ioc_type", "ioc_source", "ioc_field", "yara_rules", "rep_malicious",
            "threat_score")  # fmt: skip


class ThreatIntelDetector:
    """Reports events whose enrichment (IOC, YARA, reputation) scored ``min_score`` or more."""

    name: ClassVar[str] = "intel"

    def __init__(self, min_score: float = 40.0, high: float = 60.0, critical: float = 80.0,
                 window_minutes: int = 60) -> None:  # fmt: skip
        self.min_score, self.high, self.critical = min_score, high, critical
        self.window_minutes = window_minutes

    def detect(self, batch: Batch) -> list[Finding]:
        """One finding per entity and window holding events at or above ``min_score``."""
        if batch.num_rows == 0 or batch.column("threat_score").null_count == batch.num_rows:
            return []
        frame = pl.from_arrow(batch.select(list(_COLUMNS)))
        assert isinstance(frame, pl.DataFrame)
        hits = frame.filter(pl.col("threat_score") >= self.min_score).with_columns(
            _entity().alias("who"),
            pl.col("time").dt.truncate(f"{self.window_minutes}m").alias("window"),
        )
        groups = hits.sort("threat_score", descending=True).group_by(
            ["who", "window"], maintain_order=True
        )
        return [self._finding(g) for _, g in groups]

    def severity(self, score: float) -> Severity:
        """Medium from ``min_score``, high from ``high``, critical from ``critical``."""
        if score >= self.critical:
            return Severity.CRITICAL
        return Severity.HIGH if score >= self.high else Severity.MEDIUM

    def _finding(self, group: pl.DataFrame) -> Finding:
        top = float(group.get_column("threat_score").max())  # type: ignore[arg-type]
        row = group.row(0, named=True)
        who, name = row["who"], row["host"] or row["who"].split(":", 1)[1]
        signals = (Signal("threat_score", top, self.min_score, "enrichment score, 0-100"),
                   *intel_signals(group))  # fmt: skip
        first = next((s for s in signals[1:]), signals[0])
        return Finding(
            detector=self.name,
            entity=Entity(*who.split(":", 1)),
            first_seen=group.get_column("time").min(),  # type: ignore[arg-type]
            last_seen=group.get_column("time").max(),  # type: ignore[arg-type]
            severity=self.severity(top),
            signals=signals,
            title=f"threat intelligence: {first.value} on {name}",
            evidence=tuple(group.get_column("event_id").head(100).to_list()),
            window_seconds=self.window_minutes * 60,
        )


def _entity() -> pl.Expr:
    """``type:id``: the agent or host the events came from, else the event's own entity."""
    host = pl.coalesce(pl.col("agent_id"), pl.col("host"))
    other = pl.concat_str([pl.col("entity_type").fill_null("entity"), pl.col("entity_id")],
                          separator=":")  # fmt: skip
    return pl.when(host.is_not_null()).then(pl.lit("host:") + host).otherwise(other)


def intel_signals(frame: pl.DataFrame) -> tuple[Signal, ...]:
    """One signal per distinct indicator, YARA rule and reputation verdict in ``frame``:
    the indicator is the value, its feed and the column it matched are the detail."""
    iocs = (
        frame.filter(pl.col("ioc_indicator").is_not_null())
        .group_by(["ioc_type", "ioc_indicator", "ioc_source", "ioc_field"], maintain_order=True)
        .len()
    )
    out = [Signal(f"ioc:{t}", str(v), None, f"feed {s}; matched {f}; {n} events")
           for t, v, s, f, n in iocs.iter_rows()]  # fmt: skip
    rules = frame.get_column("yara_rules").drop_nulls().str.split(",").explode().unique()
    out += [Signal(f"yara:{r}", r, None, "YARA rule matched the file content")
            for r in rules.sort().to_list()]  # fmt: skip
    worst = frame.get_column("rep_malicious").max()
    if worst is not None and int(worst) > 0:  # type: ignore[arg-type]
        out.append(Signal("reputation.malicious", int(worst), None, "engines flagging it"))  # type: ignore[arg-type]
    return tuple(out)
