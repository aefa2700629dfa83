"""OCSF-aligned event class names.

The names are short forms of OCSF classes (Process Activity → ``process``, API Activity →
``api_activity`` ...). Readers put exactly these strings in the ``class`` column, so the
hunting language and detectors can filter on them without a lookup.
"""

from __future__ import annotations

from enum import StrEnum


class EventClass(StrEnum):
    """The value of the ``class`` column, with the OCSF class it aligns to in the docstring."""

    PROCESS = "process"  # OCSF 1007 Process Activity
    PROCESS_ACCESS = "process_access"  # OCSF 1007 (open / inject activity ids)
    FILE = "file"  # OCSF 1001 File System Activity
    MODULE = "module"  # OCSF 1005 Module Activity (image load)
    REGISTRY = "registry"  # OCSF 201001 Registry Key / Value Activity (Windows extension)
    NETWORK = "network"  # OCSF 4001 Network Activity
    DNS = "dns"  # OCSF 4003 DNS Activity
    SCRIPT = "script"  # OCSF 1009 Script Activity (PowerShell script blocks)
    AUTH = "auth"  # OCSF 3002 Authentication
    API_ACTIVITY = "api_activity"  # OCSF 6003 API Activity (cloud control plane)
    SYSTEM = "system"  # OCSF 1008 Event Log Activity / host facts
    METRIC = "metric"  # not an OCSF class: a numeric sample (GPU, workload)
    OTHER = "other"  # an event the mappings do not classify; raw is kept


EVENT_CLASSES: tuple[str, ...] = tuple(c.value for c in EventClass)
