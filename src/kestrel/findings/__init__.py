"""Stage 4, findings: the `Finding` type every detector returns, and what is done with them
(severity, dedupe / correlation, ATT&CK / ATLAS ids, export). Findings never hold events,
only their ids; they are plain frozen dataclasses, validated models live at the API edge."""

from kestrel.findings.model import Entity, Finding, Severity, Signal

__all__ = ["Entity", "Finding", "Severity", "Signal"]
