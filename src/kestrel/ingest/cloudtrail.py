"""AWS CloudTrail: delivery files ``{"Records": [...]}``, JSON arrays, JSON Lines, gzipped or not.

Each record is decoded with a typed msgspec struct that names only the fields Kestrel maps,
so the rest of a (large) CloudTrail record is skipped at C speed and kept whole in ``raw``.
A record whose mapped fields have the wrong type is rejected with msgspec's path to the field.
Only ``eventName`` is required: a record without ``eventSource`` (exports and test fixtures
drop it) is still an API call and is kept, with no service; ``requestParameters`` that are
not an object (some exports store it as JSON text) are kept in ``raw`` and name no resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec

from kestrel.config import BATCH_ROWS
from kestrel.events import event_id
from kestrel.ingest.base import Chunk, Rejected, Source
from kestrel.ingest.framing import RawRecords, frame_json
from kestrel.ingest.mappings.cloudtrail import RESOURCE_RANK, principal_arn
from kestrel.ingest.normalize import finish_chunk


class _SessionIssuer(msgspec.Struct, gc=False):
    userName: str | None = None  # noqa: N815 (CloudTrail's own names)
    arn: str | None = None


class _SessionContext(msgspec.Struct, gc=False):
    sessionIssuer: _SessionIssuer | None = None  # noqa: N815


class _Identity(msgspec.Struct, gc=False):
    type: str | None = None
    arn: str | None = None
    userName: str | None = None  # noqa: N815
    principalId: str | None = None  # noqa: N815
    accountId: str | None = None  # noqa: N815
    accessKeyId: str | None = None  # noqa: N815
    invokedBy: str | None = None  # noqa: N815
    sessionContext: _SessionContext | None = None  # noqa: N815


class _Record(msgspec.Struct, gc=False):
    eventName: str  # noqa: N815
    eventSource: str | None = None  # noqa: N815
    eventTime: str | None = None  # noqa: N815
    timestamp: str | None = msgspec.field(default=None, name="@timestamp")
    awsRegion: str | None = None  # noqa: N815
    sourceIPAddress: str | None = None  # noqa: N815
    userAgent: str | None = None  # noqa: N815
    errorCode: str | None = None  # noqa: N815
    recipientAccountId: str | None = None  # noqa: N815
    userIdentity: _Identity | None = None  # noqa: N815
    requestParameters: Any = None  # noqa: N815
    responseElements: Any = None  # noqa: N815


_decode = msgspec.json.Decoder(_Record).decode
_EMPTY_IDENTITY = _Identity()


class CloudTrailReader:
    """Reads CloudTrail records into ``api_activity`` (and ``auth`` for console logins)."""

    name: ClassVar[str] = "cloudtrail"

    def read(self, source: Source) -> Iterator[Chunk]:
        for run in frame_json(source, BATCH_ROWS):
            yield normalize(run)


_COLUMNS = (
    "event_id", "time", "class", "activity", "source_event", "entity_id", "provider",
    "user_name", "outcome", "src_ip", "cloud_account", "cloud_region", "cloud_service",
    "cloud_operation", "cloud_error_code", "cloud_user_agent", "cloud_principal",
    "cloud_principal_type", "cloud_access_key", "cloud_resource", "raw",
)  # fmt: skip


def normalize(run: RawRecords) -> Chunk:
    """Map a run of framed CloudTrail records to a batch; reject records that do not decode.

    Each record becomes one tuple in ``_COLUMNS`` order and the run is transposed to columns
    once at the end: one tuple per record is cheaper than twenty list appends.
    """
    rows: list[tuple[Any, ...]] = []
    rejected = list(run.rejected)
    kept: list[int] = []
    for i, raw in enumerate(run.raws):
        try:
            rec = _decode(raw)
        except msgspec.ValidationError as exc:
            rejected.append(Rejected.of(run.position(i), f"not a CloudTrail record: {exc}", raw))
            continue
        kept.append(i)
        rows.append(_row(rec, raw))
    columns = zip(*rows, strict=True) if rows else ([] for _ in _COLUMNS)
    cols = {name: list(values) for name, values in zip(_COLUMNS, columns, strict=True)}
    constants = {"source": "cloudtrail", "entity_type": "principal", "cloud_provider": "aws"}
    return finish_chunk(cols, kept, rejected, run, constants)


def _row(rec: _Record, raw: bytes) -> tuple[Any, ...]:
    ident = rec.userIdentity or _EMPTY_IDENTITY
    arn = principal_arn(ident.arn, ident.type, ident.principalId, ident.invokedBy,
                        ident.accountId)  # fmt: skip
    op = rec.eventName
    login = op == "ConsoleLogin"
    return (
        event_id("cloudtrail", raw), rec.eventTime or rec.timestamp,
        "auth" if login else "api_activity", "logon" if login else "call", op,
        _entity(ident, arn), rec.eventSource, _user_name(ident), _outcome(rec, login),
        rec.sourceIPAddress, rec.recipientAccountId or ident.accountId, rec.awsRegion,
        _service(rec.eventSource), op, rec.errorCode, rec.userAgent, arn, ident.type,
        ident.accessKeyId, _resource(rec.requestParameters), raw,
    )  # fmt: skip


def _entity(ident: _Identity, arn: str) -> str:
    """Baselines follow the role, not each of its sessions: an assumed role's entity is the
    issuing role's ARN."""
    issuer = ident.sessionContext.sessionIssuer if ident.sessionContext else None
    if ident.type == "AssumedRole" and issuer and issuer.arn:
        return issuer.arn
    return arn


def _service(event_source: str | None) -> str | None:
    """``s3`` of ``s3.amazonaws.com``; none for a record that names no source."""
    return event_source.partition(".")[0] if event_source else None


def _user_name(ident: _Identity) -> str | None:
    if ident.userName:
        return ident.userName
    if ident.type == "AssumedRole" and ident.arn:
        return ident.arn.rsplit("/", 1)[-1]
    return None


def _outcome(rec: _Record, login: bool) -> str:
    if rec.errorCode:
        return "failure"
    if login and isinstance(rec.responseElements, dict):
        return "failure" if rec.responseElements.get("ConsoleLogin") == "Failure" else "success"
    return "success"


def _resource(params: Any) -> str | None:
    """The highest-ranked resource key present (a request names few keys, so walk them)."""
    if not params or not isinstance(params, dict):
        return None
    best: tuple[int, str] | None = None
    for key, value in params.items():
        rank = RESOURCE_RANK.get(key)
        if (
            rank is not None
            and isinstance(value, str)
            and value
            and (best is None or rank < best[0])
        ):
            best = (rank, value)
    if best is not None:
        return best[1]
    items = params.get("instancesSet", {})
    if isinstance(items, dict) and isinstance(items.get("items"), list) and items["items"]:
        first = items["items"][0]
        if isinstance(first, dict) and isinstance(first.get("instanceId"), str):
            return str(first["instanceId"])
    return None
