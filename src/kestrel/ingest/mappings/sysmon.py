"""Sysmon (Microsoft-Windows-Sysmon/Operational): event id → class and activity, and the
EventData field → column renames per class.

A column name starting with ``@`` is a derived target that `kestrel.ingest.windows` fills
from the value (``@user`` splits ``DOMAIN\\user``, ``@process_hashes`` / ``@file_hashes``
parse ``SHA1=..,MD5=..,SHA256=..`` into lower-case hash columns, ``@initiated`` turns
``true`` / ``false`` into outbound / inbound). Every other target is a schema column that gets
the source value untouched (ints parsed), which is what the Sigma field maps rely on.
In a field map the first source field present wins when two fill the same column.
"""

from __future__ import annotations

# Lower-cased channel → the short name used in ``source_event`` (``Sysmon:1``).
LABELS: dict[str, str] = {"microsoft-windows-sysmon/operational": "Sysmon"}
# Provider names that identify Sysmon when the channel is missing.
PROVIDERS: tuple[str, ...] = ("Microsoft-Windows-Sysmon",)

EVENTS: dict[int, tuple[str, str]] = {
    1: ("process", "create"),
    2: ("file", "set_creation_time"),
    3: ("network", "connect"),
    4: ("system", "sysmon_state_change"),
    5: ("process", "terminate"),
    6: ("module", "driver_load"),
    7: ("module", "load"),
    8: ("process_access", "create_remote_thread"),
    9: ("file", "raw_read"),
    10: ("process_access", "open"),
    11: ("file", "create"),
    12: ("registry", "create_or_delete"),  # refined by EventType below
    13: ("registry", "set_value"),
    14: ("registry", "rename"),
    15: ("file", "create_stream_hash"),
    16: ("system", "sysmon_config_change"),
    17: ("file", "pipe_create"),
    18: ("file", "pipe_connect"),
    19: ("system", "wmi_filter"),
    20: ("system", "wmi_consumer"),
    21: ("system", "wmi_binding"),
    22: ("dns", "query"),
    23: ("file", "delete"),
    24: ("file", "clipboard_capture"),  # the archived clipboard content is the "file"
    25: ("process", "tamper"),
    26: ("file", "delete_logged"),
    27: ("file", "block_executable"),
    28: ("file", "block_shredding"),
    29: ("file", "executable_detected"),
    255: ("system", "sysmon_error"),
}

# Event id → (field, {value: (class, activity)}): one field that makes the activity precise.
REFINE: dict[int, tuple[str, dict[str, tuple[str, str]]]] = {
    12: (
        "EventType",
        {
            "CreateKey": ("registry", "create_key"),
            "DeleteKey": ("registry", "delete_key"),
            "CreateValue": ("registry", "create_value"),
            "DeleteValue": ("registry", "delete_value"),
        },
    ),
}

_ACTOR = {
    "Image": "process_path",
    "ProcessGuid": "process_guid",
    "ProcessId": "process_pid",
    "User": "@user",
}

# Class (or event id, which wins) → {EventData field: column}.
FIELDS: dict[str | int, dict[str, str]] = {
    "process": {
        **_ACTOR,
        "CommandLine": "process_cmdline",
        "CurrentDirectory": "process_cwd",
        "IntegrityLevel": "process_integrity",
        "Hashes": "@process_hashes",
        "ParentImage": "parent_path",
        "ParentProcessGuid": "parent_guid",
        "ParentProcessId": "parent_pid",
        "ParentCommandLine": "parent_cmdline",
    },
    "network": {
        **_ACTOR,
        "Protocol": "protocol",
        "Initiated": "@initiated",
        "SourceIp": "src_ip",
        "SourcePort": "src_port",
        "DestinationIp": "dst_ip",
        "DestinationPort": "dst_port",
        "DestinationHostname": "dst_hostname",
    },
    "module": {**_ACTOR, "ImageLoaded": "file_path", "Hashes": "@file_hashes"},
    "process_access": {
        "SourceImage": "process_path",
        "SourceProcessGuid": "process_guid",  # event 8
        "SourceProcessGUID": "process_guid",  # event 10 spells it so
        "SourceProcessId": "process_pid",
        "SourceUser": "@user",
        "TargetImage": "target_path",
        "TargetProcessId": "target_pid",
    },
    "file": {
        **_ACTOR,
        "TargetFilename": "file_path",
        "PipeName": "file_path",
        "Device": "file_path",
        "Hashes": "@file_hashes",
        "Hash": "@file_hashes",
    },
    "registry": {**_ACTOR, "TargetObject": "registry_key", "Details": "registry_value"},
    "dns": {**_ACTOR, "QueryName": "dns_query", "QueryResults": "dns_answer"},
    "system": {"User": "@user"},
    "other": {**_ACTOR},
}
