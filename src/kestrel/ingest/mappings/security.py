"""Windows Security log (Microsoft-Windows-Security-Auditing): event id → class and
activity, EventData field → column, and the outcome of the audit events that have one.

The targets follow `kestrel.ingest.mappings.sysmon` (``@`` targets are derived). Security
writes process ids in hex (``0x1a4``); the normalizer parses both forms. Its "no value" is
``-``, which the user and address columns treat as empty. Handle-based object events
(4656 / 4658 / 4660 / 4663 / 4670) are about files or registry keys: ``ObjectType`` decides.
"""

from __future__ import annotations

LABELS: dict[str, str] = {"security": "Security"}
PROVIDERS: tuple[str, ...] = ("Microsoft-Windows-Security-Auditing",)

EVENTS: dict[int, tuple[str, str]] = {
    # process
    4688: ("process", "create"),
    4689: ("process", "terminate"),
    # authentication and sessions
    4624: ("auth", "logon"),
    4625: ("auth", "logon"),
    4634: ("auth", "logoff"),
    4647: ("auth", "logoff"),
    4648: ("auth", "explicit_credentials_logon"),
    4672: ("auth", "assign_special_privileges"),
    4768: ("auth", "kerberos_tgt_request"),
    4769: ("auth", "kerberos_service_ticket_request"),
    4771: ("auth", "kerberos_preauth_failed"),
    4776: ("auth", "ntlm_credential_validation"),
    4778: ("auth", "session_reconnect"),
    4779: ("auth", "session_disconnect"),
    # objects: files (or registry keys, see REFINE), shares
    4656: ("file", "open"),
    4658: ("file", "close"),
    4660: ("file", "delete"),
    4663: ("file", "access"),
    4670: ("file", "permissions_change"),
    5140: ("file", "share_access"),
    5145: ("file", "share_access_check"),
    4657: ("registry", "set_value"),
    # Windows Filtering Platform
    5154: ("network", "listen"),
    5156: ("network", "allow"),
    5157: ("network", "block"),
    5158: ("network", "bind"),
    # persistence and configuration
    4697: ("system", "service_install"),
    4698: ("system", "scheduled_task_create"),
    4699: ("system", "scheduled_task_delete"),
    4700: ("system", "scheduled_task_enable"),
    4701: ("system", "scheduled_task_disable"),
    4702: ("system", "scheduled_task_update"),
    4719: ("system", "audit_policy_change"),
    1102: ("system", "log_clear"),
    # account management
    4720: ("system", "user_create"),
    4722: ("system", "user_enable"),
    4723: ("system", "password_change"),
    4724: ("system", "password_reset"),
    4725: ("system", "user_disable"),
    4726: ("system", "user_delete"),
    4728: ("system", "group_member_add"),
    4729: ("system", "group_member_remove"),
    4732: ("system", "group_member_add"),
    4733: ("system", "group_member_remove"),
    4738: ("system", "user_change"),
    4740: ("system", "user_lockout"),
    4741: ("system", "computer_create"),
    4742: ("system", "computer_change"),
    4756: ("system", "group_member_add"),
    4757: ("system", "group_member_remove"),
    4798: ("system", "group_membership_enumerate"),
    4799: ("system", "group_membership_enumerate"),
}

_OBJECT_TYPE = {"File": "file", "Key": "registry"}
REFINE: dict[int, tuple[str, dict[str, tuple[str, str]]]] = {
    code: ("ObjectType", {kind: (cls, EVENTS[code][1]) for kind, cls in _OBJECT_TYPE.items()})
    for code in (4656, 4658, 4660, 4663, 4670)
}

OUTCOMES: dict[int, str] = {4624: "success", 4625: "failure", 4771: "failure", 4634: "success"}

_SUBJECT = {
    "SubjectUserName": "user_name",
    "SubjectDomainName": "user_domain",
    "SubjectUserSid": "user_id",
}
# The account that authenticated is the target; the subject (often the machine) is the fallback.
_TARGET = {
    "TargetUserName": "user_name",
    "TargetDomainName": "user_domain",
    "TargetUserSid": "user_id",
}
_ACTOR = {"ProcessName": "process_path", "ProcessId": "process_pid"}

FIELDS: dict[str | int, dict[str, str]] = {
    4688: {
        "NewProcessName": "process_path",
        "NewProcessId": "process_pid",
        "CommandLine": "process_cmdline",
        "MandatoryLabel": "@integrity_sid",
        "ParentProcessName": "parent_path",
        "ProcessId": "parent_pid",  # in 4688 the creator's id
        **_TARGET,
        **_SUBJECT,
    },
    4689: {**_ACTOR, **_SUBJECT},
    5140: {"ShareName": "file_path", "IpAddress": "src_ip", "IpPort": "src_port", **_SUBJECT},
    5145: {
        "RelativeTargetName": "file_path",
        "ShareName": "file_path",
        "IpAddress": "src_ip",
        "IpPort": "src_port",
        **_SUBJECT,
    },
    "auth": {
        **_TARGET,
        **_SUBJECT,
        "LogonType": "logon_type",
        "IpAddress": "src_ip",
        "IpPort": "src_port",
        **_ACTOR,
    },
    "file": {"ObjectName": "file_path", **_ACTOR, **_SUBJECT},
    "registry": {"ObjectName": "registry_key", "NewValue": "registry_value", **_ACTOR, **_SUBJECT},
    "network": {
        "Application": "process_path",
        "ProcessID": "process_pid",
        "ProcessId": "process_pid",
        "SourceAddress": "src_ip",
        "SourcePort": "src_port",
        "DestAddress": "dst_ip",
        "DestPort": "dst_port",
        "Protocol": "protocol",
        "Direction": "direction",
    },
    "system": {**_SUBJECT, **_ACTOR},
    "other": {**_SUBJECT, **_ACTOR},
}

# Mandatory label SIDs (4688 ``MandatoryLabel``) → Sysmon's IntegrityLevel words.
INTEGRITY: dict[str, str] = {
    "S-1-16-0": "Untrusted",
    "S-1-16-4096": "Low",
    "S-1-16-8192": "Medium",
    "S-1-16-8448": "MediumPlus",
    "S-1-16-12288": "High",
    "S-1-16-16384": "System",
    "S-1-16-20480": "ProtectedProcess",
}
