"""`InstanceCredentialDetector`: EC2 instance-profile credentials used from somewhere that is
evidently not the instance (GuardDuty's "InstanceCredentialExfiltration" idea).

An instance profile's temporary credentials always appear in CloudTrail as an ``AssumedRole``
session whose session name is the instance id (``…:assumed-role/<role>/i-0317f6c6b66ae9c40``).
Anyone who reads them from the instance metadata service (SSRF, a shell on the box) can copy
them to their own machine and use them until they expire; the calls then come from the
attacker's address. Without AWS's own IP-range data we cannot ask "is this an EC2 address",
so the detector looks for evidence that the caller is a person's machine:

* ``instance_creds.human_source`` (kind ``sensitive``, high on its own): the source address
  also carries calls of a human identity (an ``IAMUser`` or ``Root`` principal, or a console /
  sign-in / browser user agent), in the same batch or within ``ip_memory_hours`` of it in
  the learnt history. A person working from the address where the instance's keys are used
  is the CloudGoat ``ec2_ssrf`` / OTRF "EC2 proxy S3 exfiltration" pattern. Known benign
  case: IAM user keys configured on the instance itself (a CI runner with both); the
  finding names the address and the human principals so that is quick to rule out.
* ``instance_creds.desktop_agent`` (kind ``rule``, medium): the user agent names a desktop
  OS that EC2 rarely runs (``Darwin`` / macOS; EC2 Mac instances exist, hence medium).
  Windows is not in the list: Windows instances are common.
* ``instance_creds.new_source`` (kind ``baseline``, low on its own): an address the
  instance's session never used, once the session has ``min_history`` calls. Public
  addresses change on stop / start, so alone it is only a lead.

Only sources that are IP literals are scored: calls AWS makes on the instance's behalf carry
a service name (``ec2.amazonaws.com``, ``AWS Internal``) and are never off-instance use.
Signals of one session in one window (``window_minutes``) make one finding; techniques
T1552.005 (Cloud Instance Metadata API: where such keys come from) and T1078.004 (Cloud
Accounts: their use), plus T1530 (Data from Cloud Storage) when the calls read S3 objects.
The state is the human addresses with their last call, and the (session, address) pairs
seen with each session's call count.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import polars as pl

from kestrel.detect.cloud.common import StatefulDetector, evidence_by, frame, make_finding
from kestrel.events import Batch
from kestrel.findings import Entity, Finding, Signal

# case-insensitive: AWS writes ids in lower case, but anonymised datasets (Stratus Red Team's
# detonation logs) mix the case of the hex digits
INSTANCE_SESSION = r"(?i)^i-[0-9a-f]{8,17}$"
# an IPv4 or IPv6 literal: service names ("ec2.amazonaws.com", "AWS Internal") are not
IP_LITERAL = r"^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7})$"
DESKTOP_AGENT = r"(?i)(\bDarwin/|Macintosh|Mac OS X|\bmacOS)"
# the console, the sign-in service and browsers: a person at a keyboard
HUMAN_AGENT = r"(?i)^(console\.[a-z0-9.-]*amazonaws\.com|signin\.amazonaws\.com|Mozilla/)"
HUMAN_TYPES = ("IAMUser", "Root")
# every id this detector can emit (tests check them against the MITRE tables)
TECHNIQUES = ("T1552.005", "T1078.004", "T1530")
S3_READS = ("GetObject", "CopyObject", "SelectObjectContent", "RestoreObject")
_COLUMNS = ("class", "src_ip", "user_name", "cloud_principal", "cloud_principal_type",
            "cloud_user_agent", "cloud_operation", "cloud_service")  # fmt: skip
_HUMANS = {"ip": pl.String(), "last_seen": pl.Datetime("us", "UTC"), "who": pl.String()}
_PAIRS = {"session": pl.String(), "ip": pl.String()}
_COUNTS = {"session": pl.String(), "n": pl.Int64()}
_WIN = ["session", "window_start"]


class InstanceCredentialDetector(StatefulDetector):
    """Instance-profile credentials used from a source that is evidently not the instance."""

    name: ClassVar[str] = "instance_credentials"
    _state_names = ("humans", "pairs", "counts")

    def __init__(
        self, window_minutes: int = 60, ip_memory_hours: int = 168, min_history: int = 50
    ) -> None:
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self.window = timedelta(minutes=window_minutes)
        self.memory = timedelta(hours=ip_memory_hours)
        self._humans = pl.DataFrame(schema=_HUMANS)
        self._pairs = pl.DataFrame(schema=_PAIRS)
        self._counts = pl.DataFrame(schema=_COUNTS)

    def detect(self, batch: Batch) -> list[Finding]:
        """Findings for the instance sessions of ``batch`` used from a non-instance source."""
        if "src_ip" not in batch.column_names or batch.column("src_ip").null_count == len(batch):
            return []  # no source addresses (metrics, most bench batches): nothing to score
        ip = pl.col("src_ip").fill_null("")
        where = pl.col("class").is_in(["api_activity", "auth"]) & ip.str.contains(IP_LITERAL)
        events = frame(batch, _COLUMNS, where)
        if events.is_empty():
            return []
        session = pl.col("user_name").fill_null("").str.contains(INSTANCE_SESSION) & (
            pl.col("cloud_principal_type") == "AssumedRole"
        )
        events = events.with_columns(session.alias("_inst"))
        humans = self._human_sources(events.filter(~pl.col("_inst")))
        inst = events.filter(pl.col("_inst")).with_columns(
            pl.col("cloud_principal").fill_null(pl.col("user_name")).alias("session"),
            pl.col("src_ip").alias("ip"),
            pl.col("time").dt.truncate(self.window).alias("window_start"),
        )
        hits = self._score(inst, humans) if inst.height else inst
        self._learn(inst, humans)
        return self._findings(hits)

    def _human_sources(self, others: pl.DataFrame) -> pl.DataFrame:
        """Per address: the last call of a human identity and who made them (this batch and
        history together)."""
        ua = pl.col("cloud_user_agent").fill_null("")
        human = pl.col("cloud_principal_type").is_in(list(HUMAN_TYPES)) | ua.str.contains(
            HUMAN_AGENT
        )
        who = pl.col("cloud_principal").fill_null(pl.col("user_name")).fill_null("unknown")
        now = (
            others.filter(human.fill_null(False))
            .group_by(pl.col("src_ip").alias("ip"))
            .agg(
                pl.col("time").max().dt.cast_time_unit("us").alias("last_seen"),
                who.unique().sort().str.join(", ").alias("who"),
            )
        )
        return pl.concat([self._humans, now.cast(_HUMANS)])  # type: ignore[arg-type]

    def _score(self, inst: pl.DataFrame, humans: pl.DataFrame) -> pl.DataFrame:
        """``inst`` with the three signal columns, only the rows where one is set."""
        near = humans.group_by("ip").agg(pl.col("last_seen").max(), pl.col("who").first())
        old = self._counts.filter(pl.col("n") >= self._params["min_history"])
        seen = self._pairs.with_columns(pl.lit(True).alias("_known"))
        out = (
            inst.join(near, on="ip", how="left")
            .join(old.with_columns(pl.lit(True).alias("_old")), on="session", how="left")
            .join(seen, on=["session", "ip"], how="left")
        )
        # a human call after the instance's, or within the memory before it (history)
        human = pl.col("last_seen").is_not_null() & (
            pl.col("last_seen") >= pl.col("time") - self.memory
        )
        desktop = pl.col("cloud_user_agent").fill_null("").str.contains(DESKTOP_AGENT)
        new_src = pl.col("_old").fill_null(False) & ~pl.col("_known").fill_null(False)
        out = out.with_columns(
            human.alias("human"), desktop.alias("desktop"), new_src.alias("new_src")
        )
        return out.filter(pl.col("human") | pl.col("desktop") | pl.col("new_src"))

    def _learn(self, inst: pl.DataFrame, humans: pl.DataFrame) -> None:
        self._humans = humans.group_by("ip").agg(
            pl.col("last_seen").max(), pl.col("who").sort_by("last_seen").last()
        )
        pairs = inst.select("session", "ip").unique()
        self._pairs = pl.concat([self._pairs, pairs]).unique(maintain_order=True)
        counts = inst.group_by("session").agg(pl.len().cast(pl.Int64).alias("n"))
        self._counts = pl.concat([self._counts, counts]).group_by("session").agg(pl.col("n").sum())

    def _findings(self, hits: pl.DataFrame) -> list[Finding]:
        if hits.is_empty():
            return []
        ev = evidence_by(hits, _WIN)
        agg = hits.group_by(_WIN).agg(
            pl.col("human").any(), pl.col("desktop").any(), pl.col("new_src").any(),
            pl.col("ip").unique().sort().str.join(", ").alias("ips"),
            pl.col("who").drop_nulls().unique().sort().str.join("; ").alias("who"),
            pl.col("cloud_user_agent").drop_nulls().first().alias("agent"),
            pl.col("cloud_operation").is_in(list(S3_READS)).any().alias("s3_read"),
        )  # fmt: skip
        return [self._finding(row) for row in ev.join(agg, on=_WIN).iter_rows(named=True)]

    def _finding(self, row: dict[str, Any]) -> Finding:
        signals = []
        if row["human"]:
            signals.append(Signal("instance_creds.human_source", row["ips"], None,
                                  f"address also used by {row['who']}", "sensitive"))  # fmt: skip
        if row["desktop"]:
            signals.append(Signal("instance_creds.desktop_agent", row["agent"] or "", None,
                                  "user agent names a desktop OS", "rule"))  # fmt: skip
        if row["new_src"]:
            detail = "address never used by this instance session"
            least = float(self._params["min_history"])
            signals.append(
                Signal("instance_creds.new_source", row["ips"], least, detail, "baseline")
            )
        techniques = TECHNIQUES if row["s3_read"] else TECHNIQUES[:2]
        title = f"Instance credentials used off the instance from {row['ips']}"
        entity = Entity("principal", row["session"])
        return make_finding(self.name, entity, row, signals, techniques, title, self.window)
