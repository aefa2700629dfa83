"""The endpoint rule signals, declared as data: name, points, technique, condition.

Each rule is a Polars expression over the event columns (plus the per-window ``rate``), so
the whole rule set is one ``select`` over the frame. The rule score of an event is the sum
of the points of the rules it fires, capped at 100; the ensemble weighs it by 0.4.

No rule looks at a parent pid alone on every event: the ancestor counted each process
*stop* event as "parent is pid 0" (stop events carry no parent), so every exit looked like
an orphan. ``process.orphan`` fires only on process *creation* with an explicit parent pid
0 for a process that is not one of the system's own (pids 0 and 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

_OFFICE = ["winword.exe", "excel.exe", "powerpnt.exe", "outlook.exe", "onenote.exe"]
_SHELLS = ["cmd.exe", "powershell.exe", "pwsh.exe", "wscript.exe", "cscript.exe", "mshta.exe",
           "rundll32.exe", "regsvr32.exe", "bash", "sh"]  # fmt: skip
_BAD_PORTS = [4444, 1337, 31337, 6667, 5555, 8888]


@dataclass(frozen=True, slots=True)
class EndpointRule:
    """One rule: fires where ``condition`` is true."""

    name: str
    points: float
    technique: str
    condition: pl.Expr
    doc: str


def _name(col: str) -> pl.Expr:
    return pl.col(col).fill_null("").str.to_lowercase()


def _created() -> pl.Expr:
    return pl.col("activity").fill_null("") == "create"


RULES: tuple[EndpointRule, ...] = (
    EndpointRule("ioc.match", 60, "", pl.col("ioc_type").is_not_null(),
                 "An indicator from a threat-intelligence feed matched the event."),
    EndpointRule("yara.match", 60, "", pl.col("yara_rules").is_not_null(),
                 "A YARA rule matched the content of the event's file."),
    EndpointRule("reputation.malicious", 50, "", pl.col("rep_malicious").fill_null(0) >= 5,
                 "Five or more reputation engines flag the hash or address."),
    EndpointRule("process.office_spawns_shell", 60, "T1204.002",
                 _created() & _name("parent_name").is_in(_OFFICE)
                 & _name("process_name").is_in(_SHELLS),
                 "An Office application started a shell or script host."),
    EndpointRule("process.encoded_powershell", 50, "T1059.001",
                 _name("process_cmdline").str.contains(r"powershell.*\s-(e|en|enc|encodedcommand)\s"),
                 "PowerShell with an encoded command line."),
    EndpointRule("process.credential_dumping", 80, "T1003.001",
                 _name("process_cmdline").str.contains(r"sekurlsa|lsass.*\.dmp|procdump.*lsass"),
                 "A command line that dumps LSASS or runs mimikatz modules."),
    EndpointRule("process.shadow_copy_delete", 80, "T1490",
                 _name("process_cmdline").str.contains(r"vssadmin.*delete\s+shadows|wmic.*shadowcopy.*delete"),
                 "Deleting volume shadow copies (ransomware preparation)."),
    EndpointRule("process.exec_from_temp", 30, "T1204",
                 _created() & pl.col("in_temp").fill_null(0.0).gt(0),
                 "A process started from a temporary or public folder."),
    EndpointRule("process.orphan", 20, "T1055",
                 _created() & (pl.col("parent_pid") == 0).fill_null(False)
                 & ~pl.col("process_pid").fill_null(0).is_in([0, 4]),
                 "A new process whose parent pid is explicitly 0 (creation events only)."),
    EndpointRule("network.suspicious_port", 30, "T1571",
                 pl.col("dst_port").cast(pl.Int64).fill_null(0).is_in(_BAD_PORTS),
                 "A connection to a port typical of shells and C2 frameworks."),
    EndpointRule("rate.burst", 30, "T1059", pl.col("rate").fill_null(0.0) >= 500,
                 "500 or more events of one class from one host within one window."),
)  # fmt: skip


def rule_hits(frame: pl.DataFrame, rules: tuple[EndpointRule, ...] = RULES) -> pl.DataFrame:
    """One boolean column per rule (named by the rule) and ``rule_score`` (0-100)."""
    fired = frame.select([r.condition.fill_null(False).alias(r.name) for r in rules])
    points = [pl.when(pl.col(r.name)).then(r.points).otherwise(0.0) for r in rules]
    score = fired.select(pl.sum_horizontal(points).clip(upper_bound=100.0).alias("rule_score"))
    return pl.concat([fired, score], how="horizontal")
