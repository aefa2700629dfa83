"""Entity types of the hunting language, declared as data over the flat event schema.

An entity (a process, a network connection, an IP address …) is not a row of the events
table: one event mentions several entities, and one entity appears in many events. Each
type therefore lists its *roles*: the ways an event row can mention it, each a map from
the type's canonical attributes to event columns (a process event mentions the process
itself through ``process_*`` columns and its parent through ``parent_*`` columns). GET
projects a type's primary roles, FIND matches one role of the input and projects roles of
the output, and an entity's identity (``key``) is one SQL expression over its canonical
attributes, so the same expression deduplicates events and joins variables.

Aliases let Kestrel 1.x (STIX: ``parent_ref.name``, ``binary_ref.name``), Kestrel 2.x (OCSF:
``cmd_line``, ``parent_process.pid``) and Kestrel event-schema spellings (``process_pid``) all
name the same attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp

Col = Callable[[str], exp.Expr]
"""Gives the SQL for a canonical attribute (an event column, or a variable's column)."""


@dataclass(frozen=True, slots=True)
class Role:
    """One way an event mentions an entity: canonical attribute → event column."""

    name: str
    columns: Mapping[str, str]
    classes: tuple[str, ...] = ()
    # rows only for entities no earlier role of the type mentions (see kestrel.hunt.entity_sql)
    only_new: bool = False


@dataclass(frozen=True, slots=True)
class EntityType:
    """A hunt entity type: its attributes, roles, identity and alternative spellings."""

    name: str
    attrs: tuple[str, ...]
    roles: tuple[Role, ...]
    key: Callable[[Col], exp.Expr]
    aliases: Mapping[str, str] = field(default_factory=dict)
    initial: str = "name"  # the attribute `NEW type ["a", "b"]` fills
    required: tuple[str, ...] = ("name",)  # an event mentions the entity when one is set
    # the key is NULL exactly on the rows where no `required` attribute is set (a non-NULL key
    # means the row mentions the entity, and back); tests/hunt/test_find_whole.py checks it
    key_null_iff_no_required: bool = False

    def role(self, name: str) -> Role:
        """The role called ``name``."""
        return next(r for r in self.roles if r.name == name)

    @property
    def primary(self) -> tuple[Role, ...]:
        """The roles GET projects: all of them (a process named only as a parent is a
        process too, as in Kestrel 1.x, where every process object of a record matched)."""
        return self.roles

    def canonical(self, attr: str) -> str | None:
        """The canonical name of ``attr`` for this type, or None when it is not ours."""
        prefix, colon, rest = attr.partition(":")
        if colon:
            if TYPE_ALIASES.get(prefix, prefix) != self.name:
                return None
            attr = rest
        if attr in self.attrs:
            return attr
        if attr in self.aliases:
            return self.aliases[attr]
        for role in self.roles:
            for canonical, column in role.columns.items():
                if column == attr:
                    return canonical
        return None


def _s(e: exp.Expr) -> exp.Expr:
    return exp.cast(e, exp.DataType.build("text"))


def _coalesce(*parts: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", *parts)


def _concat(*parts: exp.Expr) -> exp.Expr:
    """``a || '|' || b`` with NULL parts as empty strings (a key must never be NULL)."""
    out: exp.Expr = _coalesce(_s(parts[0]), exp.Literal.string(""))
    for part in parts[1:]:
        out = exp.DPipe(this=out, expression=exp.Literal.string("|"))
        out = exp.DPipe(this=out, expression=_coalesce(_s(part), exp.Literal.string("")))
    return out


def _process_key(col: Col) -> exp.Expr:
    # GUID when the source has one (Sysmon, EDRs); else host + pid + lower-case name (a pid
    # reused on a host by another program is another process), then the name alone
    # (entities made by NEW or LOAD may carry only a name).
    name = exp.Lower(this=col("name"))
    by_pid = exp.Case().when(
        col("pid").is_(exp.null()).not_(), _concat(col("host"), col("pid"), name)
    )
    return _coalesce(_s(col("uid")), by_pid, _s(name))


def _tuple_key(*attrs: str) -> Callable[[Col], exp.Expr]:
    def key(col: Col) -> exp.Expr:
        return _concat(*(col(a) for a in attrs))

    return key


def _first_key(*attrs: str) -> Callable[[Col], exp.Expr]:
    def key(col: Col) -> exp.Expr:
        return _coalesce(*(_s(col(a)) for a in attrs))

    return key


_PROC_CLASSES = ("process", "file", "network", "dns", "registry", "module", "script",
                 "process_access")  # fmt: skip
_PROCESS_ACTOR = {
    "pid": "process_pid", "name": "process_name", "command_line": "process_cmdline",
    "path": "process_path", "cwd": "process_cwd", "uid": "process_guid",
    "integrity": "process_integrity", "md5": "process_md5", "sha1": "process_sha1",
    "sha256": "process_sha256", "parent_pid": "parent_pid", "parent_uid": "parent_guid",
    "parent_name": "parent_name", "parent_path": "parent_path",
    "parent_command_line": "parent_cmdline", "host": "host", "user_name": "user_name",
    "user_domain": "user_domain", "user_id": "user_id",
}  # fmt: skip
_PROCESS_PARENT = {
    "pid": "parent_pid", "name": "parent_name", "command_line": "parent_cmdline",
    "path": "parent_path", "uid": "parent_guid", "host": "host",
}  # fmt: skip
_HASHES = {"MD5": "md5", "'MD5'": "md5", "SHA-1": "sha1", "'SHA-1'": "sha1", "SHA1": "sha1",
           "SHA-256": "sha256", "'SHA-256'": "sha256", "SHA256": "sha256"}  # fmt: skip

PROCESS = EntityType(
    "process",
    tuple(_PROCESS_ACTOR),
    (Role("actor", _PROCESS_ACTOR, _PROC_CLASSES),
     Role("parent", _PROCESS_PARENT, ("process",), only_new=True)),
    _process_key,
    {
        # Kestrel 1.x (STIX 2.0 observed-data)
        "binary_ref.name": "name", "x_unique_id": "uid", "guid": "uid",
        "binary_ref.parent_directory_ref.path": "path", "parent_ref.pid": "parent_pid",
        "parent_ref.name": "parent_name", "parent_ref.binary_ref.name": "parent_name",
        "parent_ref.command_line": "parent_command_line", "parent_ref.x_unique_id": "parent_uid",
        "creator_user_ref.user_id": "user_id", "creator_user_ref.account_login": "user_name",
        "x-oca-asset:hostname": "host", "user-account:user_id": "user_id",
        "user-account:account_login": "user_name", "hostname": "host",
        # Kestrel 2.x (OCSF)
        "cmd_line": "command_line", "file.name": "name", "file.path": "path",
        "parent_process.pid": "parent_pid", "parent_process.name": "parent_name",
        "parent_process.cmd_line": "parent_command_line", "parent_process.uid": "parent_uid",
        "parent_process.file.name": "parent_name", "parent_process.file.path": "parent_path",
        "user.name": "user_name", "user.uid": "user_id", "user.domain": "user_domain",
        "device.hostname": "host", "endpoint.hostname": "host", "integrity_level": "integrity",
        **{f"binary_ref.hashes.{k}": v for k, v in _HASHES.items()},
        **{f"hashes.{k}": v for k, v in _HASHES.items()},
    },
    required=("pid", "uid", "name"),
    key_null_iff_no_required=True,
)  # fmt: skip

_NET = {
    "src_ip": "src_ip", "src_port": "src_port", "dst_ip": "dst_ip", "dst_port": "dst_port",
    "protocol": "protocol", "direction": "direction", "bytes_in": "bytes_in",
    "bytes_out": "bytes_out", "dst_hostname": "dst_hostname", "host": "host",
}  # fmt: skip
NETWORK = EntityType(
    "network-traffic",
    tuple(_NET),
    (Role("connection", _NET, ("network",)),),
    _tuple_key("host", "protocol", "src_ip", "src_port", "dst_ip", "dst_port"),
    {
        "src_ref.value": "src_ip", "dst_ref.value": "dst_ip", "protocols": "protocol",
        "protocols[*]": "protocol", "src_byte_count": "bytes_out", "dst_byte_count": "bytes_in",
        "src_endpoint.ip": "src_ip", "src_endpoint.port": "src_port", "dst_endpoint.ip": "dst_ip",
        "dst_endpoint.port": "dst_port", "connection_info.protocol_name": "protocol",
        "connection_info.direction": "direction", "dst_endpoint.hostname": "dst_hostname",
        "x-oca-asset:hostname": "host",
    },
    required=("src_ip", "dst_ip"),
)  # fmt: skip

_FILE = {"name": "file_name", "path": "file_path", "md5": "file_md5", "sha1": "file_sha1",
         "sha256": "file_sha256", "host": "host"}  # fmt: skip
FILE = EntityType(
    "file",
    tuple(_FILE),
    (Role("file", _FILE, ("file", "module")),),
    lambda col: _concat(col("host"), _coalesce(_s(col("path")), _s(col("name")))),
    {"parent_directory_ref.path": "path", "x-oca-asset:hostname": "host",
     **{f"hashes.{k}": v for k, v in _HASHES.items()}},
    required=("path", "name"),
)  # fmt: skip

IP = EntityType(
    "ipv4-addr",
    ("value",),
    (Role("src", {"value": "src_ip"}, ("network", "dns", "api_activity", "auth")),
     Role("dst", {"value": "dst_ip"}, ("network",))),
    _first_key("value"),
    {"ip": "value"},
    initial="value",
    required=("value",),
)  # fmt: skip

DOMAIN = EntityType(
    "domain-name",
    ("value",),
    (Role("query", {"value": "dns_query"}, ("dns",)),
     Role("dst", {"value": "dst_hostname"}, ("network",))),
    _first_key("value"),
    {"name": "value", "hostname": "value"},
    initial="value",
    required=("value",),
)  # fmt: skip

_USER = {"user_id": "user_id", "user_name": "user_name", "user_domain": "user_domain"}
USER = EntityType(
    "user-account",
    tuple(_USER),
    (Role("actor", _USER),),
    lambda col: _coalesce(_s(col("user_id")), _concat(col("user_domain"), col("user_name"))),
    {"account_login": "user_name", "name": "user_name", "domain": "user_domain",
     "uid": "user_id"},
    initial="user_id",
    required=("user_id", "user_name"),
)  # fmt: skip

HOST = EntityType(
    "x-oca-asset",
    ("hostname", "agent_id"),
    (Role("host", {"hostname": "host", "agent_id": "agent_id"}),),
    _first_key("hostname"),
    {"name": "hostname", "host": "hostname", "device.hostname": "hostname"},
    initial="hostname",
    required=("hostname",),
)  # fmt: skip

_PRINCIPAL = {"arn": "cloud_principal", "principal_type": "cloud_principal_type",
              "account": "cloud_account", "provider": "cloud_provider"}  # fmt: skip
PRINCIPAL = EntityType(
    "cloud-principal",
    tuple(_PRINCIPAL),
    (Role("actor", _PRINCIPAL, ("api_activity",)),),
    _first_key("arn"),
    {"principal": "arn", "name": "arn", "type": "principal_type", "actor.user.uid": "arn"},
    initial="arn",
    required=("arn",),
)  # fmt: skip

_CALL = {"event_id": "event_id", "operation": "cloud_operation", "service": "cloud_service",
         "region": "cloud_region", "error_code": "cloud_error_code",
         "user_agent": "cloud_user_agent", "principal": "cloud_principal",
         "access_key": "cloud_access_key", "resource": "cloud_resource", "src_ip": "src_ip",
         "account": "cloud_account", "outcome": "outcome"}  # fmt: skip
API_CALL = EntityType(
    "cloud-api-call",
    tuple(_CALL),
    (Role("call", _CALL, ("api_activity",)),),
    _first_key("event_id"),
    {"name": "operation", "api.operation": "operation", "eventName": "operation",
     "eventSource": "service", "sourceIPAddress": "src_ip"},
    initial="operation",
    required=("operation",),
)  # fmt: skip

# Kestrel's own findings: rows of the store's ``findings`` table, not of the events, so the
# role maps attributes to that table's columns and `kestrel.hunt.findings` builds the SQL
# (GET, and FIND … LINKED through the events a finding cites as evidence).
_FINDING = {"id": "finding_id", "detector": "detector", "title": "title", "severity": "severity",
            "severity_level": "severity", "entity_type": "entity_type",
            "entity_id": "entity_id", "techniques": "techniques", "tags": "tags",
            "signals": "signals", "evidence": "evidence", "source_ids": "source_ids",
            "window_seconds": "window_seconds"}  # fmt: skip
FINDING = EntityType(
    "finding",
    tuple(_FINDING),
    (Role("finding", _FINDING),),
    _first_key("id"),
    {"finding_id": "id", "name": "title", "rule": "title", "technique": "techniques",
     "attack": "techniques", "entity": "entity_id", "level": "severity_level"},
    initial="title",
    required=("id",),
)  # fmt: skip

EVENT_TYPES: tuple[EntityType, ...] = (PROCESS, NETWORK, FILE, IP, DOMAIN, USER, HOST, PRINCIPAL,
                                       API_CALL)  # fmt: skip
"""The types whose entities are mentioned by events (every type but `FINDING`)."""
ENTITY_TYPES: dict[str, EntityType] = {t.name: t for t in (*EVENT_TYPES, FINDING)}
TYPE_ALIASES: dict[str, str] = {
    "network": "network-traffic", "network_traffic": "network-traffic", "conn": "network-traffic",
    "ipv6-addr": "ipv4-addr", "ip": "ipv4-addr", "domain": "domain-name", "user": "user-account",
    "host": "x-oca-asset", "endpoint": "x-oca-asset", "principal": "cloud-principal",
    "api-call": "cloud-api-call", "api_call": "cloud-api-call", "findings": "finding",
    "alert": "finding", "x-kestrel-finding": "finding",
    **{name: name for name in ENTITY_TYPES},
}  # fmt: skip
