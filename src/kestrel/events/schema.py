"""The normalized event schema, declared as data (one row per column, osquery-style).

Every stage imports this module and nothing heavier: the columns, their Arrow types, a doc
line each and the event classes that fill them. `docs/schema.md` is generated from here
(`python -m kestrel.events.doc`) and a test fails when it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

ANY = ("*",)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the event schema."""

    name: str
    type: pa.DataType
    doc: str
    classes: tuple[str, ...] = ANY


_S = pa.string()
_I = pa.int64()
_F = pa.float64()
_T = pa.timestamp("us", tz="UTC")

_PROC = ("process", "file", "network", "dns", "registry", "module", "script", "process_access")
_NET = ("network", "dns", "api_activity", "auth")

COLUMNS: tuple[Column, ...] = (
    # -- identity and provenance ------------------------------------------------------------
    Column(
        "event_id",
        _S,
        "Deterministic id: 128-bit BLAKE2b of source kind + the record's "
        "canonical bytes (whitespace removed), hex. Same record, same id, whatever file.",
    ),
    Column("time", _T, "When the event happened, UTC (source timestamp, not ingest time)."),
    Column(
        "class",
        _S,
        "OCSF-aligned event class: process, file, network, dns, registry, "
        "module, process_access, script, system, api_activity, auth, metric, other.",
    ),
    Column(
        "activity",
        _S,
        "What happened within the class: create, terminate, connect, "
        "load, set_value, delete, logon, call, sample, ...",
    ),
    Column(
        "source",
        _S,
        "The reader that produced the event: agent, cloudtrail, evtx, winlog-json, metrics.",
    ),
    Column(
        "source_event",
        _S,
        "The source's own event type: `Sysmon:1`, `Security:4688`, "
        "CloudTrail eventName, agent event_type, metric family.",
    ),
    Column(
        "entity_type",
        _S,
        "Kind of thing whose behaviour is baselined: host, principal "
        "(cloud identity), workload (GPU / job).",
    ),
    Column(
        "entity_id",
        _S,
        "Stable id of that entity: host name, principal ARN, `host/gpuN` or job id.",
    ),
    # -- host and user ----------------------------------------------------------------------
    Column("host", _S, "Host name the event was recorded on."),
    Column("agent_id", _S, "Kestrel agent id (agent events only)."),
    Column("channel", _S, "Windows event log channel, e.g. Microsoft-Windows-Sysmon/Operational."),
    Column("provider", _S, "Windows provider name / cloud event source."),
    Column("event_code", _I, "Numeric source event id (Windows EventID).", ("*",)),
    Column("user_name", _S, "Acting user name (without domain)."),
    Column("user_domain", _S, "Acting user's domain."),
    Column("user_id", _S, "Acting user's SID / uid."),
    Column("outcome", _S, "success or failure, where the source says."),
    Column("logon_type", _I, "Windows logon type (auth events).", ("auth",)),
    # -- process ----------------------------------------------------------------------------
    Column("process_pid", _I, "Process id.", _PROC),
    Column("process_guid", _S, "Process GUID (Sysmon) or agent process key.", _PROC),
    Column("process_name", _S, "Executable file name, e.g. cmd.exe.", _PROC),
    Column("process_path", _S, "Full executable path.", _PROC),
    Column("process_cmdline", _S, "Full command line.", ("process",)),
    Column("process_cwd", _S, "Current directory.", ("process",)),
    Column("process_integrity", _S, "Integrity level (Windows).", ("process",)),
    Column("process_md5", _S, "MD5 of the executable, lower-case hex.", ("process", "module")),
    Column("process_sha1", _S, "SHA-1 of the executable, lower-case hex.", ("process", "module")),
    Column(
        "process_sha256", _S, "SHA-256 of the executable, lower-case hex.", ("process", "module")
    ),
    Column("parent_pid", _I, "Parent process id.", ("process",)),
    Column("parent_guid", _S, "Parent process GUID.", ("process",)),
    Column("parent_name", _S, "Parent executable file name.", ("process",)),
    Column("parent_path", _S, "Parent executable path.", ("process",)),
    Column("parent_cmdline", _S, "Parent command line.", ("process",)),
    Column(
        "target_pid", _I, "Target process id (process access, remote thread).", ("process_access",)
    ),
    Column(
        "target_path",
        _S,
        "Target process path (process access, remote thread).",
        ("process_access",),
    ),
    # -- file, module, registry, script -----------------------------------------------------
    Column(
        "file_path",
        _S,
        "File path (file events; loaded image for module events).",
        ("file", "module"),
    ),
    Column("file_name", _S, "File name part of file_path.", ("file", "module")),
    Column("file_md5", _S, "MD5 of the file, lower-case hex.", ("file", "module")),
    Column("file_sha1", _S, "SHA-1 of the file, lower-case hex.", ("file", "module")),
    Column("file_sha256", _S, "SHA-256 of the file, lower-case hex.", ("file", "module")),
    Column("registry_key", _S, "Registry key path (TargetObject).", ("registry",)),
    Column("registry_value", _S, "Registry value data (Details).", ("registry",)),
    Column("script_text", _S, "Script block / pipeline text (PowerShell).", ("script",)),
    # -- network ----------------------------------------------------------------------------
    Column(
        "src_ip", _S, "Source IP address (for cloud calls: the caller's sourceIPAddress).", _NET
    ),
    Column("src_port", _I, "Source port.", ("network",)),
    Column("dst_ip", _S, "Destination IP address.", ("network",)),
    Column("dst_port", _I, "Destination port.", ("network",)),
    Column("dst_hostname", _S, "Destination host name, if resolved.", ("network",)),
    Column("protocol", _S, "Transport protocol, lower-case (tcp, udp).", ("network",)),
    Column("direction", _S, "inbound or outbound.", ("network",)),
    Column("bytes_in", _I, "Bytes received.", ("network", "metric")),
    Column("bytes_out", _I, "Bytes sent.", ("network", "metric")),
    Column("dns_query", _S, "Queried name.", ("dns",)),
    Column("dns_answer", _S, "Answers as the source gives them.", ("dns",)),
    # -- cloud ------------------------------------------------------------------------------
    Column("cloud_provider", _S, "aws, gcp, azure.", ("api_activity", "metric")),
    Column("cloud_account", _S, "Account / subscription / project id.", ("api_activity", "metric")),
    Column("cloud_region", _S, "Region of the call or the workload.", ("api_activity", "metric")),
    Column(
        "cloud_service",
        _S,
        "Service, e.g. ec2 (from eventSource ec2.amazonaws.com).",
        ("api_activity",),
    ),
    Column("cloud_operation", _S, "API operation (CloudTrail eventName).", ("api_activity",)),
    Column(
        "cloud_error_code", _S, "Error code, e.g. AccessDenied; null on success.", ("api_activity",)
    ),
    Column("cloud_user_agent", _S, "Caller's user agent.", ("api_activity",)),
    Column(
        "cloud_principal",
        _S,
        "Acting principal ARN (assumed role: the session ARN).",
        ("api_activity",),
    ),
    Column(
        "cloud_principal_type", _S, "IAMUser, AssumedRole, Root, AWSService, ...", ("api_activity",)
    ),
    Column("cloud_access_key", _S, "Access key id used for the call.", ("api_activity",)),
    Column(
        "cloud_resource",
        _S,
        "Main resource named in the request (bucket, instance, "
        "trail, user ...), where the reader can tell.",
        ("api_activity",),
    ),
    # -- metrics and workloads --------------------------------------------------------------
    Column(
        "metric_name",
        _S,
        "Metric name: gpu_util, mem_util, power_watts, DCGM_FI_DEV_GPU_UTIL, ...",
        ("metric",),
    ),
    Column("metric_value", _F, "Metric value.", ("metric",)),
    Column("metric_unit", _S, "Unit: percent, watts, bytes, seconds, celsius, MiB.", ("metric",)),
    Column("gpu_index", _I, "GPU index on the host.", ("metric",)),
    Column("instance_type", _S, "Cloud instance type, e.g. p4d.24xlarge.", ("metric",)),
    Column("job_id", _S, "Workload / training job id.", ("metric",)),
    Column("job_name", _S, "Workload / training job name.", ("metric",)),
    # -- enrichment (kestrel.enrich; null until an enricher fills them) ----------------------
    Column(
        "ioc_indicator",
        _S,
        "The IOC feed indicator this event matched (hash, IP, CIDR, domain, URL or file name).",
    ),
    Column("ioc_type", _S, "Indicator type: md5, sha1, sha256, ip, cidr, domain, url, filename."),
    Column("ioc_source", _S, "The feed the matching indicator came from (file or feed name)."),
    Column("ioc_field", _S, "The event column that matched the indicator, e.g. dst_ip."),
    Column(
        "yara_rules",
        _S,
        "YARA rules matching the content of the event's file: `namespace:rule`, comma-separated.",
    ),
    Column("geo_ip", _S, "The remote address looked up for GeoIP (dst_ip outbound, else src_ip)."),
    Column("geo_country", _S, "ISO 3166 code of geo_ip; `private` or `reserved` off the internet."),
    Column("geo_city", _S, "City of geo_ip (English name), where the database has one."),
    Column("geo_asn", _I, "Autonomous system number of geo_ip, where an ASN database is given."),
    Column("geo_as_org", _S, "Organisation of that autonomous system."),
    Column(
        "rep_malicious",
        _I,
        "Reputation: engines that flag the event's hash or remote address as malicious.",
    ),
    Column("rep_engines", _I, "Reputation: engines that gave a verdict (the denominator)."),
    Column(
        "threat_score",
        _F,
        "0-100 enrichment threat score (docs/enrichment.md): IOC, YARA, reputation, geography.",
    ),
    # -- the source record ------------------------------------------------------------------
    Column(
        "raw",
        _S,
        "The untouched source record as JSON text (whitespace removed), so a "
        "rule can reach any source field the schema does not name.",
    ),
)

SCHEMA: pa.Schema = pa.schema([pa.field(c.name, c.type) for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMN_TYPES: dict[str, pa.DataType] = {c.name: c.type for c in COLUMNS}

# The columns a reader must always fill (a row without them is a rejected record).
REQUIRED: tuple[str, ...] = ("event_id", "time", "class", "source", "raw")
