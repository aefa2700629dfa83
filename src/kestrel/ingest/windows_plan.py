"""The Windows mapping tables compiled into plans: for each (log, EventID), the class, the
activity and the steps that copy EventData fields into columns.

`kestrel.ingest.mappings` holds the tables as data; this module turns each table row into a
small function once (per log and EventID, cached), so the per-record work in
`kestrel.ingest.windows` is a dict lookup and a few calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

import pyarrow as pa

from kestrel.events.schema import COLUMN_TYPES
from kestrel.ingest.mappings import powershell, security, sysmon

Step = Callable[[dict[str, list[Any]], int, Any], None]
"""Writes one source value into the column lists at a row index."""


@dataclass(frozen=True, slots=True)
class _Log:
    """One Windows log family's tables (see `kestrel.ingest.mappings.sysmon`)."""

    labels: Mapping[str, str]
    providers: tuple[str, ...]
    events: Mapping[int, tuple[str, str]]
    fields: Mapping[str | int, Mapping[str, str]]
    refine: Mapping[int, tuple[str, Mapping[str, tuple[str, str]]]]
    outcomes: Mapping[int, str] = field(default_factory=dict)
    system_user: bool = False


LOGS: dict[str, _Log] = {
    "sysmon": _Log(sysmon.LABELS, sysmon.PROVIDERS, sysmon.EVENTS, sysmon.FIELDS, sysmon.REFINE),
    "security": _Log(
        security.LABELS,
        security.PROVIDERS,
        security.EVENTS,
        security.FIELDS,
        security.REFINE,
        outcomes=security.OUTCOMES,
    ),
    "powershell": _Log(
        powershell.LABELS,
        powershell.PROVIDERS,
        powershell.EVENTS,
        powershell.FIELDS,
        powershell.REFINE,
        system_user=powershell.SYSTEM_USER,
    ),
}

_BY_CHANNEL = {ch: (kind, label) for kind, log in LOGS.items() for ch, label in log.labels.items()}
_BY_PROVIDER = {
    p: (kind, next(iter(log.labels.values()))) for kind, log in LOGS.items() for p in log.providers
}


@lru_cache(maxsize=4096)
def kind_of(channel: str | None, provider: str | None) -> tuple[str | None, str]:
    """(log family or None, short name for ``source_event``) from the channel, else from the
    provider. An unknown log is named after its channel: ``WMI-Activity``, ``System`` ..."""
    if channel and channel.lower() in _BY_CHANNEL:
        return _BY_CHANNEL[channel.lower()]
    if provider in _BY_PROVIDER:
        return _BY_PROVIDER[provider or ""]
    name = channel or provider or "Windows"
    return None, name.removeprefix("Microsoft-Windows-").removesuffix("/Operational")


# -- value conversions ---------------------------------------------------------------------

_INT64 = 2**63


def text(value: Any) -> str | None:
    """A value as text: strings as they are, numbers written out, ``{"#text": ...}`` unwrapped,
    lists (unnamed ``Data``) one item per line."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "\n".join(t for v in value if (t := text(v)) is not None)
    if isinstance(value, dict):
        return text(value.get("#text"))
    return None


def integer(value: Any) -> int | None:
    """Decimal or ``0x`` hex (Security's process ids), within int64; else None."""
    if isinstance(value, str):
        s = value.strip()
        try:
            value = int(s, 16) if s[:2] in ("0x", "0X") else int(s)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -_INT64 <= value < _INT64 else None


def _present(value: Any) -> str | None:
    """Text, with Windows' empty markers (``""``, ``-``) as None."""
    s = text(value)
    return None if s in (None, "", "-") else s


_IANA = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp"}
_WFP_DIRECTION = {"%%14592": "inbound", "%%14593": "outbound"}


def sid(value: Any) -> str | None:
    """A SID, with the null SID ``S-1-0-0`` (Security's "nobody") as None."""
    s = _present(value)
    return None if s == "S-1-0-0" else s


def _protocol(value: Any) -> str | None:
    s = _present(value)
    return None if s is None else _IANA.get(s, s.lower())


def _direction(value: Any) -> str | None:
    s = _present(value)
    return None if s is None else _WFP_DIRECTION.get(s, s.lower())


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "user_name": _present, "user_domain": _present, "user_id": sid,
    "src_ip": _present, "dst_ip": _present, "dst_hostname": _present,
    "protocol": _protocol, "direction": _direction,
}  # fmt: skip


# -- steps -----------------------------------------------------------------------------------


def converter(column: str) -> Callable[[Any], Any]:
    """How a source value becomes a value of ``column``: the column's own rule (user names,
    addresses, protocol, direction), else by type: int64 columns parse ints, others take text."""
    return _CONVERT.get(column) or (integer if COLUMN_TYPES[column] == pa.int64() else text)


def _user(cols: dict[str, list[Any]], i: int, value: Any) -> None:
    """``DOMAIN\\user`` → user_domain, user_name (a bare name fills user_name only)."""
    s = _present(value)
    if s is None or cols["user_name"][i] is not None:
        return
    domain, _, name = s.rpartition("\\")
    cols["user_name"][i] = name
    if domain and cols["user_domain"][i] is None:
        cols["user_domain"][i] = domain


_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


def _hashes(prefix: str) -> Step:
    """Sysmon ``SHA1=..,MD5=..,SHA256=..,IMPHASH=..`` → lower-case ``<prefix>_<algo>``."""

    def step(cols: dict[str, list[Any]], i: int, value: Any) -> None:
        for part in (text(value) or "").split(","):
            algo, _, digest = part.partition("=")
            suffix = _HASHES.get(algo.strip().upper())
            if suffix and digest and cols[f"{prefix}_{suffix}"][i] is None:
                cols[f"{prefix}_{suffix}"][i] = digest.strip().lower()

    return step


def _initiated(cols: dict[str, list[Any]], i: int, value: Any) -> None:
    """Sysmon 3 ``Initiated``: the host opened the connection (outbound) or accepted it."""
    s = (text(value) or "").lower()
    if s in ("true", "false") and cols["direction"][i] is None:
        cols["direction"][i] = "outbound" if s == "true" else "inbound"


def _integrity_sid(cols: dict[str, list[Any]], i: int, value: Any) -> None:
    if cols["process_integrity"][i] is None:
        cols["process_integrity"][i] = security.INTEGRITY.get(text(value) or "")


_DERIVED: dict[str, tuple[Step, tuple[str, ...]]] = {
    "@user": (_user, ("user_name", "user_domain")),
    "@process_hashes": (_hashes("process"), ("process_md5", "process_sha1", "process_sha256")),
    "@file_hashes": (_hashes("file"), ("file_md5", "file_sha1", "file_sha256")),
    "@initiated": (_initiated, ("direction",)),
    "@integrity_sid": (_integrity_sid, ("process_integrity",)),
}


def _targets() -> tuple[str, ...]:
    """Every column a step may write (plus user_id, written from the System user)."""
    found: dict[str, None] = {"user_id": None}
    for log in LOGS.values():
        for fields in log.fields.values():
            for target in fields.values():
                found.update(dict.fromkeys(_DERIVED[target][1] if target in _DERIVED else [target]))
    return tuple(found)


TARGET_COLUMNS: tuple[str, ...] = _targets()


# -- plans -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one (log, EventID): class, activity, outcome; ``copies`` (field,
    column, converter) for plain columns and ``steps`` for derived targets (run after the
    copies); and the plans per value of a refining field (``EventType``, ``ObjectType``)."""

    cls: str
    activity: str | None
    outcome: str | None = None
    copies: tuple[tuple[str, str, Callable[[Any], Any]], ...] = ()
    steps: tuple[tuple[str, Step], ...] = ()
    system_user: bool = False
    refine_field: str | None = None
    refined: Mapping[str, Plan] = field(default_factory=dict)


_OTHER = Plan("other", None)


@cache
def plan_for(kind: str | None, code: int) -> Plan:
    """The plan for EventID ``code`` of log family ``kind`` (unknown ones: class other)."""
    log = LOGS.get(kind or "")
    if log is None:
        return _OTHER
    cls, activity = log.events.get(code, ("other", None))
    plan = _plan(log, code, cls, activity)
    if code in log.refine:
        name, values = log.refine[code]
        refined = {value: _plan(log, code, c, a) for value, (c, a) in values.items()}
        plan = replace(plan, refine_field=name, refined=refined)
    return plan


def _plan(log: _Log, code: int, cls: str, activity: str | None) -> Plan:
    fields = log.fields.get(code) or log.fields.get(cls) or {}
    copies = tuple(
        (name, target, converter(target))
        for name, target in fields.items()
        if target not in _DERIVED
    )
    steps = tuple((name, _DERIVED[t][0]) for name, t in fields.items() if t in _DERIVED)
    return Plan(cls, activity, log.outcomes.get(code), copies, steps, log.system_user)
