"""PowerShell: the Operational log (4103 module / pipeline, 4104 script block) and the classic
"Windows PowerShell" log (400 / 403 engine, 600 provider, 800 pipeline): event id → class and
activity, EventData field → column.

The classic events carry their text as unnamed ``Data`` values (joined one per line into
``script_text``). The acting user of the Operational log is the event's own System user, so
``SYSTEM_USER`` tells the normalizer to use the System ``UserID`` for ``user_id``; the NXLog
shape resolves it into ``AccountName`` / ``Domain`` as well.
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    "microsoft-windows-powershell/operational": "PowerShell",
    "powershellcore/operational": "PowerShellCore",
    "windows powershell": "Windows PowerShell",
}
PROVIDERS: tuple[str, ...] = ("Microsoft-Windows-PowerShell", "PowerShellCore", "PowerShell")
SYSTEM_USER = True

EVENTS: dict[int, tuple[str, str]] = {
    4103: ("script", "invoke"),
    4104: ("script", "execute"),
    4105: ("script", "start"),
    4106: ("script", "stop"),
    400: ("script", "engine_start"),
    403: ("script", "engine_stop"),
    600: ("script", "provider_start"),
    800: ("script", "pipeline_execute"),
}

REFINE: dict[int, tuple[str, dict[str, tuple[str, str]]]] = {}

_USER = {"UserID": "user_id", "AccountName": "user_name", "Domain": "user_domain"}

FIELDS: dict[str | int, dict[str, str]] = {
    "script": {
        "ScriptBlockText": "script_text",  # 4104
        "Payload": "script_text",  # 4103
        "Data": "script_text",  # classic 400 / 403 / 600 / 800
        **_USER,
    },
    "other": {**_USER},
}
