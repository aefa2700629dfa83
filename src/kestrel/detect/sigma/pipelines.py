"""How Sigma's vocabulary meets Kestrel's event schema: field maps and logsource dispatch, as data.

Two tables, both reviewable row by row (pySigma's `FieldMappingTransformation` idea):

* ``FIELD_MAPS``: per logsource category, the Sigma field → schema column renames. They are
  applied with pySigma processing pipelines, so the compiler sees rules already in our terms.
  A field that is not renamed stays a *source field*: the engine reads it from the ``raw``
  record (see `RAW_PATHS`). Only columns that hold the source value untouched are mapped
  (``Image`` → ``process_path``), never derived ones (``User`` is split by the readers into
  name and domain, so it stays a source field).
* ``logsource_dispatch``: per logsource, which events can match at all (reader, channel,
  EventID). The engine groups rules by it, so a rule never sees an event of another kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sigma.pipelines.common import windows_logsource_mapping
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldFunctionTransformation,
    FieldMappingTransformation,
    WildcardPlaceholderTransformation,
)
from sigma.rule import SigmaLogSource

SYSMON = "microsoft-windows-sysmon/operational"
SECURITY = "security"

# Fields every Windows event has, whatever the category.
_WINDOWS_COMMON = {
    "EventID": "event_code",
    "Channel": "channel",
    "Provider_Name": "provider",
    "Computer": "host",
}
_PROCESS = {
    "Image": "process_path",
    "CommandLine": "process_cmdline",
    "ParentImage": "parent_path",
    "ParentCommandLine": "parent_cmdline",
    "CurrentDirectory": "process_cwd",
    "IntegrityLevel": "process_integrity",
    "ProcessGuid": "process_guid",
    "ParentProcessGuid": "parent_guid",
    # Security 4688 names for the same things
    "NewProcessName": "process_path",
    "ParentProcessName": "parent_path",
}
_ACTOR = {"Image": "process_path", "ProcessGuid": "process_guid"}
_FILE = {**_ACTOR, "TargetFilename": "file_path"}
_REGISTRY = {**_ACTOR, "TargetObject": "registry_key", "Details": "registry_value"}
_ACCESS = {"SourceImage": "process_path", "TargetImage": "target_path"}

FIELD_MAPS: dict[str, dict[str, str]] = {
    "process_creation": _PROCESS,
    "file_event": _FILE,
    "file_delete": _FILE,
    "file_change": _FILE,
    "file_rename": _FILE,
    "file_access": _FILE,
    "file_block_executable": _FILE,
    "create_stream_hash": _FILE,
    "image_load": {**_ACTOR, "ImageLoaded": "file_path"},
    "registry_add": _REGISTRY,
    "registry_delete": _REGISTRY,
    "registry_set": _REGISTRY,
    "registry_event": _REGISTRY,
    "registry_rename": _REGISTRY,
    "network_connection": {
        **_ACTOR,
        "DestinationIp": "dst_ip",
        "DestinationHostname": "dst_hostname",
        "SourceIp": "src_ip",
    },
    "dns_query": {**_ACTOR, "QueryName": "dns_query"},
    "process_access": _ACCESS,
    "create_remote_thread": _ACCESS,
    "pipe_created": _ACTOR,
    "ps_script": {"ScriptBlockText": "script_text"},
}

# AWS CloudTrail: the columns the CloudTrail reader copies verbatim from the record.
CLOUDTRAIL_MAP = {
    "eventName": "cloud_operation",
    "eventSource": "provider",
    "sourceIPAddress": "src_ip",
    "userAgent": "cloud_user_agent",
    "errorCode": "cloud_error_code",
    "awsRegion": "cloud_region",
}

# Sysmon event ids per Sigma category; process creation also comes from Security 4688.
SYSMON_IDS: dict[str, tuple[int, ...]] = {
    "process_creation": (1,),
    "file_change": (2,),
    "network_connection": (3,),
    "sysmon_status": (4, 16),
    "process_termination": (5,),
    "driver_load": (6,),
    "image_load": (7,),
    "create_remote_thread": (8,),
    "raw_access_thread": (9,),
    "process_access": (10,),
    "file_event": (11,),
    "registry_add": (12,),
    "registry_delete": (12,),
    "registry_event": (12, 13, 14),
    "registry_set": (13,),
    "registry_rename": (14,),
    "create_stream_hash": (15,),
    "pipe_created": (17, 18),
    "wmi_event": (19, 20, 21),
    "dns_query": (22,),
    "file_delete": (23, 26),
    "clipboard_capture": (24,),
    "process_tampering": (25,),
    "file_block_executable": (27,),
    "file_block_shredding": (28,),
    "file_executable_detected": (29,),
    "sysmon_error": (255,),
}
# Windows categories that live in a service's channel under one event id.
CATEGORY_CHANNELS: dict[str, tuple[str, tuple[int, ...]]] = {
    "ps_module": ("powershell", (4103,)),
    "ps_script": ("powershell", (4104,)),
    "ps_classic_start": ("powershell-classic", (400,)),
    "ps_classic_provider_start": ("powershell-classic", (600,)),
    "ps_classic_script": ("powershell-classic", (800,)),
}
# Sysmon 12 carries both key creation and deletion; the category says which.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "registry_add": ("CreateKey",),
    "registry_delete": ("DeleteKey", "DeleteValue"),
}

# Where a source field is found in ``raw``, per reader, first match wins. ``{f}`` is the
# field name; dotted Sigma names (``requestParameters.bucketName``) are JSON paths already.
RAW_PATHS: dict[str, tuple[str, ...]] = {
    "evtx": ("Event.EventData.{f}", "Event.UserData.*.{f}", "Event.System.{f}"),
    "winlog-json": ("{f}", "EventData.{f}", "winlog.event_data.{f}"),
    "cloudtrail": ("{f}",),
}
RAW_PATHS_DEFAULT: tuple[str, ...] = ("{f}", "Event.EventData.{f}")


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Which events a logsource can match: empty sets mean "any"; ``never`` means no reader
    produces it yet (the rule compiles but cannot fire, and `kestrel rules stats` says so)."""

    key: str
    sources: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    codes: frozenset[int] = frozenset()
    never: bool = False

    def accepts(self, source: str | None, channel: str | None, code: int | None) -> bool:
        """Whether events with this (reader, channel, EventID) belong to the logsource."""
        if self.never:
            return False
        return (
            (not self.sources or source in self.sources)
            and (not self.channels or (channel or "").lower() in self.channels)
            and (not self.codes or code in self.codes)
        )


def logsource_dispatch(logsource: SigmaLogSource) -> Dispatch:
    """The `Dispatch` for a rule's logsource (product / category / service)."""
    product, category, service = logsource.product, logsource.category, logsource.service
    key = "/".join(str(p or "*") for p in (product, category, service))
    if product == "windows":
        return _windows(key, category, service)
    if product == "aws" and service == "cloudtrail":
        return Dispatch(key, sources=frozenset({"cloudtrail"}))
    return Dispatch(key, never=True)


def _windows(key: str, category: str | None, service: str | None) -> Dispatch:
    if category in SYSMON_IDS:
        channels = {SYSMON} | ({SECURITY} if category == "process_creation" else set())
        codes = set(SYSMON_IDS[category]) | ({4688} if category == "process_creation" else set())
        return Dispatch(key, channels=frozenset(channels), codes=frozenset(codes))
    if category in CATEGORY_CHANNELS:
        svc, codes_ = CATEGORY_CHANNELS[category]
        return Dispatch(key, channels=_service_channels(svc), codes=frozenset(codes_))
    if category is None and service in windows_logsource_mapping:
        return Dispatch(key, channels=_service_channels(service))
    return Dispatch(key, never=True)


def _service_channels(service: str) -> frozenset[str]:
    found = windows_logsource_mapping[service]
    names = [found] if isinstance(found, str) else list(found)
    return frozenset(n.lower() for n in names)


def kestrel_pipeline() -> ProcessingPipeline:
    """The pySigma pipeline that puts rules into Kestrel's terms (applied before compiling)."""
    items = [_placeholders(), _mapping("windows_common", _WINDOWS_COMMON, product="windows")]
    for category, mapping in FIELD_MAPS.items():
        items.append(_mapping(f"windows_{category}", mapping, product="windows", category=category))
    for category, values in EVENT_TYPES.items():
        items.append(_event_type(category, values))
    items.append(_spaced_names("windefend"))
    items.append(_mapping("aws_cloudtrail", CLOUDTRAIL_MAP, product="aws", service="cloudtrail"))
    return ProcessingPipeline(name="kestrel", priority=20, items=items)


def _mapping(name: str, mapping: dict[str, str], **logsource: str) -> ProcessingItem:
    return ProcessingItem(
        identifier=f"kestrel_{name}",
        transformation=FieldMappingTransformation(_widen(mapping)),
        rule_conditions=[LogsourceCondition(**logsource)],
    )


def _widen(mapping: dict[str, str]) -> dict[str | None, str | list[str]]:
    """pySigma's field maps are typed with optional keys and list targets."""
    out: dict[str | None, str | list[str]] = {}
    out.update(mapping)
    return out


def _event_type(category: str, values: tuple[str, ...]) -> ProcessingItem:
    return ProcessingItem(
        identifier=f"kestrel_{category}_event_type",
        transformation=AddConditionTransformation({"EventType": list(values)}),
        rule_conditions=[LogsourceCondition(product="windows", category=category)],
    )


def _spaced_names(service: str) -> ProcessingItem:
    """Defender writes ``Threat Name``; Sigma rules say ``ThreatName``."""
    return ProcessingItem(
        identifier=f"kestrel_{service}_spaced_names",
        transformation=FieldFunctionTransformation({}, _spaced),
        rule_conditions=[LogsourceCondition(product="windows", service=service)],
    )


def _spaced(name: str | None) -> str:
    """``ThreatName`` → ``Threat Name`` (schema columns, all lower case, stay as they are).

    >>> _spaced("ThreatName"), _spaced("event_code")
    ('Threat Name', 'event_code')
    """
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name or "")


def _placeholders() -> ProcessingItem:
    """``%placeholder%`` lists (rules-placeholder) have no local values: match anything."""
    return ProcessingItem(
        identifier="kestrel_placeholders", transformation=WildcardPlaceholderTransformation()
    )
