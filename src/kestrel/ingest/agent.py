"""The Kestrel endpoint agent's event envelope, in JSON Lines or JSON (array or one per line).

Envelope (every field but ``event_id`` required)::

    {"event_id": "...", "agent_id": "...", "event_type": "process|file|network|system",
     "timestamp": "2024-05-01T12:00:00Z" | 1714564800 | 1714564800123, "payload": {...}}

``timestamp`` is an ISO-8601 string (no zone means UTC) or an epoch number in seconds or
milliseconds (told apart by size, see `kestrel.ingest.times`). Payload fields per
``event_type`` and the columns they fill (all optional unless marked *required*):

* ``process``: ``action`` *required* ``start|stop`` (activity create / terminate), ``pid``,
  ``ppid``, ``name``, ``exe``, ``cmdline`` (a string, or a list of arguments joined with
  quotes around arguments that hold spaces), ``username`` (``DOMAIN\\user`` is split into
  user_domain / user_name), ``sha256``, ``parent_name``, ``parent_exe``, ``hostname``;
  ``create_time`` (epoch seconds) is kept in ``raw`` only.
* ``network``: ``pid``, ``process_name``, ``exe``, ``local_ip``, ``local_port``, ``remote_ip``,
  ``remote_port``, ``remote_hostname``, ``protocol`` (lower-cased), ``status`` (psutil's;
  ``LISTEN`` makes activity listen, anything else connect), ``direction`` ``inbound|outbound``,
  ``bytes_in``, ``bytes_out``, ``hostname``. The initiator is the source: local → remote
  unless ``direction`` is inbound, then remote → local.
* ``file``: ``action`` *required* ``create|modify|delete|move`` (activity create / update /
  delete / rename), ``path`` (for a move, the new path; ``old_path`` stays in ``raw``),
  ``sha256``, ``pid``, ``process_name``, ``hostname``; ``size`` is kept in ``raw`` only.
* ``system``: ``hostname``; ``os``, ``os_version``, ``boot_time``, ``cpu_count``,
  ``mem_total``, ``ip_addresses`` are kept in ``raw`` only (activity inventory).

Every event: ``host`` = payload ``hostname``, else ``agent_id``; entity host / ``host``
lower-cased; ``source_event`` = ``event_type``; ``event_id`` hashes the canonical envelope,
so an envelope the agent sends twice is stored once. A mapped field of the wrong type, a
payload that is not an object or an unknown ``event_type`` rejects the envelope with
msgspec's path to the field. Fields the contract does not name are kept in ``raw``.
``docs/agent-envelope.md`` has the same contract with examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from hashlib import blake2b as _blake2b
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import numpy as np
import pyarrow as pa

from kestrel import config
from kestrel.config import BATCH_ROWS
from kestrel.ingest.base import Chunk, Rejected, Source
from kestrel.ingest.framing import RawRecords, frame_json
from kestrel.ingest.mappings.agent import ACTIVITY, LISTEN_STATUS
from kestrel.ingest.normalize import finish_chunk
from kestrel.ingest.times import _MAX_US, _MIN_US, epoch_micros, to_iso

# Integers that must fit their int64 columns (an out-of-range one rejects the envelope).
_NonNegative = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]

# Payload structs: an attribute named like a schema column is copied into that column as is
# (``msgspec.field(name=...)`` gives the agent's own field name); the rest are derived below.


class _Process(msgspec.Struct, kw_only=True):
    action: Literal["start", "stop"]
    hostname: str | None = None
    process_pid: _NonNegative | None = msgspec.field(default=None, name="pid")
    parent_pid: _NonNegative | None = msgspec.field(default=None, name="ppid")
    process_name: str | None = msgspec.field(default=None, name="name")
    process_path: str | None = msgspec.field(default=None, name="exe")
    cmdline: str | list[str] | None = None
    username: str | None = None
    sha256: str | None = None
    parent_name: str | None = None
    parent_path: str | None = msgspec.field(default=None, name="parent_exe")


class _Network(msgspec.Struct, kw_only=True):
    hostname: str | None = None
    process_pid: _NonNegative | None = msgspec.field(default=None, name="pid")
    process_name: str | None = None
    process_path: str | None = msgspec.field(default=None, name="exe")
    local_ip: str | None = None
    local_port: _Port | None = None
    remote_ip: str | None = None
    remote_port: _Port | None = None
    dst_hostname: str | None = msgspec.field(default=None, name="remote_hostname")
    protocol: str | None = None
    status: str | None = None
    direction: Literal["inbound", "outbound"] | None = None
    bytes_in: _NonNegative | None = None
    bytes_out: _NonNegative | None = None


class _File(msgspec.Struct, kw_only=True):
    action: Literal["create", "modify", "delete", "move"]
    hostname: str | None = None
    file_path: str | None = msgspec.field(default=None, name="path")
    sha256: str | None = None
    process_pid: _NonNegative | None = msgspec.field(default=None, name="pid")
    process_name: str | None = None


class _System(msgspec.Struct, kw_only=True):
    hostname: str | None = None


_Payload = _Process | _Network | _File | _System


class _Envelope(msgspec.Struct, kw_only=True, tag_field="event_type"):
    kind: ClassVar[str]
    agent_id: str
    timestamp: str | int | float
    event_id: str | None = None


class _ProcessEvent(_Envelope, tag="process"):
    kind: ClassVar[str] = "process"
    payload: _Process


class _NetworkEvent(_Envelope, tag="network"):
    kind: ClassVar[str] = "network"
    payload: _Network


class _FileEvent(_Envelope, tag="file"):
    kind: ClassVar[str] = "file"
    payload: _File


class _SystemEvent(_Envelope, tag="system"):
    kind: ClassVar[str] = "system"
    payload: _System


_Event = _ProcessEvent | _NetworkEvent | _FileEvent | _SystemEvent
_decode = msgspec.json.Decoder(_Event).decode
_decode_all = msgspec.json.Decoder(list[_Event]).decode

# Columns copied from same-named payload attributes (None where a payload type lacks one).
_COPIED = (
    "process_pid", "process_name", "process_path", "parent_pid", "parent_name", "parent_path",
    "file_path", "dst_hostname", "direction", "bytes_in", "bytes_out",
)  # fmt: skip


class AgentEnvelopeReader:
    """Reads Kestrel agent envelopes into process, network, file and system events."""

    name: ClassVar[str] = "agent"

    def read(self, source: Source) -> Iterator[Chunk]:
        runs = _whole_lines(source, BATCH_ROWS)
        for run in frame_json(source, BATCH_ROWS) if runs is None else runs:
            yield normalize(run)


_WHOLE_BYTES = 16 * 1024 * 1024
_WS = b" \t\r\n"
_decode_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _whole_lines(source: Source, batch_rows: int) -> list[RawRecords] | None:
    """`frame_json`'s runs for the common body, framed in a few C calls instead of a Python
    loop per line, or None to let `frame_json` frame it: a JSON Lines body of at most
    `_WHOLE_BYTES` (an API request) that opens with ``{``, has no blank line and holds
    exactly one JSON value per line. Every line is checked at once: the lines joined into one
    array must parse, with each element exactly as long as its line (so a value never spans
    lines or shares one); the canonical array then gives each record's canonical bytes."""
    if source.size is not None and source.size > _WHOLE_BYTES:
        return None
    with source.open() as stream:
        data = stream.read(_WHOLE_BYTES + 1)
    if len(data) > _WHOLE_BYTES or not data.startswith(b"{"):
        return None
    pieces = data.split(b"\n")
    if not pieces[-1]:
        pieces.pop()
    lines = [piece.strip(_WS) for piece in pieces]
    if not all(lines) or max(map(len, pieces)) > config.MAX_RECORD_BYTES:
        return None
    joined = b"[" + b",".join(lines) + b"]"
    try:
        elements = _decode_raws(joined)
        canon = msgspec.json.format(joined, indent=-1)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if list(map(len, elements)) != list(map(len, lines)):
        return None
    raws = lines if canon == joined else [bytes(r) for r in _decode_raws(canon)]
    numbers = list(range(1, len(raws) + 1))
    return [
        RawRecords(
            source.name,
            raws[lo : lo + batch_rows],
            list(numbers[lo : lo + batch_rows]),
            numbers[lo : lo + batch_rows],
        )
        for lo in range(0, len(raws), batch_rows)
    ]


def normalize(run: RawRecords) -> Chunk:
    """Map a run of framed envelopes to a batch; reject envelopes that do not decode.

    The whole run is decoded in one msgspec call (one JSON array of the canonical records,
    which framing already checked one by one); only when some envelope does not validate is
    the run decoded record by record, so each reject carries its own position and reason.
    """
    joined = b"[" + b",".join(run.raws) + b"]"
    try:
        joined.decode("utf-8")  # msgspec skips unknown fields unchecked; `raw` must be UTF-8
        events = _decode_all(joined)
    except (msgspec.ValidationError, UnicodeDecodeError):
        return _normalize_each(run)
    return _finish(events, run.raws, list(range(len(run.raws))), list(run.rejected), run)


def _normalize_each(run: RawRecords) -> Chunk:
    """`normalize` one record at a time: the path for a run with envelopes to reject."""
    events: list[_Event] = []
    raws: list[bytes] = []
    kept: list[int] = []
    rejected = list(run.rejected)
    for i, raw in enumerate(run.raws):
        try:
            raw.decode("utf-8")
            events.append(_decode(raw))
        except UnicodeDecodeError as exc:  # a crash (500) before; now this record alone
            rejected.append(Rejected.of(run.position(i), f"not UTF-8: {exc}", raw))
            continue
        except msgspec.ValidationError as exc:
            reason = f"not an agent envelope: {exc}"
            rejected.append(Rejected.of(run.position(i), reason, raw))
            continue
        raws.append(raw)
        kept.append(i)
    return _finish(events, raws, kept, rejected, run)


def _finish(
    events: Sequence[_Event],
    raws: Sequence[bytes],
    kept: list[int],
    rejected: list[Rejected],
    run: RawRecords,
) -> Chunk:
    constants = {"source": "agent", "entity_type": "host"}
    return finish_chunk(_columns(events, raws), kept, rejected, run, constants)


# Every payload attribute a column is read from. A payload type without one answers None
# from a class attribute (not a struct field, so decoding keeps such a field in ``raw``
# only, as before): one `attrgetter` call per event then reads them all, and one ``zip``
# turns the rows into columns, instead of a `getattr` per event and column (11 copied
# columns took 4.7-5.1 us per event as list comprehensions; bench/RESULTS.md, API).
_READ = (*_COPIED, "hostname", "username", "sha256", "cmdline", "protocol", "action", "status")
for _cls in (_Process, _Network, _File, _System):
    for _name in _READ:
        if _name not in _cls.__struct_fields__:
            setattr(_cls, _name, None)
_read = attrgetter(*_READ)
_envelope = attrgetter("kind", "agent_id", "timestamp", "payload")


def _columns(events: Sequence[_Event], raws: Sequence[bytes]) -> dict[str, Any]:
    """The batch columns: the envelopes' and payloads' attributes read a row at a time in
    C (`attrgetter`), transposed with ``zip``; derived columns from those."""
    if not events:
        return {name: [] for name in ("event_id", "time", "raw", *_COPIED)}
    kinds, agent_ids, stamps, payloads = zip(*map(_envelope, events), strict=True)
    read = _payload_columns(payloads)
    hosts = [h or a for h, a in zip(read["hostname"], agent_ids, strict=True)]
    cols: dict[str, Any] = {
        "event_id": _event_ids(raws),
        "time": _times(stamps),
        "class": kinds,
        "activity": _activities(kinds, read["action"], read["status"]),
        "source_event": kinds,
        "host": hosts,
        "entity_id": [host.lower() for host in hosts],
        "agent_id": agent_ids,
        "raw": raws,  # canonical UTF-8 bytes: finish_chunk makes the column in one copy
    }
    for name in _COPIED:
        cols[name] = read[name]
    cols.update(_derived(kinds, read, payloads))
    return cols


# `event_id("agent", raw)`'s hash with its parameters set once: a copy of it per event is
# cheaper than a new one (1,000 bench records: 0.48 us per event against 0.78 when each
# call passes digest_size and person; bench/RESULTS.md, API). Never updated itself.
_ID_HASH = _blake2b(digest_size=16, person=b"agent")


def _event_ids(raws: Sequence[bytes]) -> list[str]:
    """`event_id("agent", raw)` of each record, inline (no Python frame per event)."""
    ids = []
    for raw in raws:
        h = _ID_HASH.copy()
        h.update(raw)
        ids.append(h.hexdigest())
    return ids


def _payload_columns(payloads: Sequence[_Payload]) -> Mapping[str, Sequence[Any]]:
    """Each `_READ` attribute of the payloads as a column. When all are of one type (a run
    of one kind of event), each payload's fields come out in one `msgspec.structs.astuple`
    call (1,000 process payloads: 0.56 us per event against 1.5 with `attrgetter`, which
    looks every name up); a mixed run is read with `attrgetter`."""
    types = set(map(type, payloads))
    if len(types) != 1:
        return dict(zip(_READ, zip(*map(_read, payloads), strict=True), strict=True))
    # the attribute names, in `astuple`'s order (`msgspec.structs.fields` took ~0.3 ms a
    # call: it reads the class's annotations anew each time)
    names = type(payloads[0]).__struct_fields__
    rows = map(msgspec.structs.astuple, payloads)
    found = dict(zip(names, zip(*rows, strict=True), strict=True))
    none = (None,) * len(payloads)
    return {name: found.get(name, none) for name in _READ}


def _activities(
    kinds: Sequence[str], actions: Sequence[str | None], statuses: Sequence[str | None]
) -> list[str]:
    """The activity of each event: from the payload's action, or for a network event
    listen / connect from the socket status (`_action`)."""
    return [
        ACTIVITY[(kind, _listen_or_connect(status) if kind == "network" else action)]
        for kind, action, status in zip(kinds, actions, statuses, strict=True)
    ]


def _listen_or_connect(status: str | None) -> str:
    return "listen" if (status or "").upper() == LISTEN_STATUS else "connect"


_TS = pa.timestamp("us", tz="UTC")


def _times(stamps: Sequence[str | int | float]) -> pa.Array | list[str | None]:
    """The time column: when every timestamp is an epoch number that `datetime` can hold, a
    timestamp array from the microseconds in one cast (agents send epochs; building an ISO
    string per event only to parse it back cost more than the rest of the reader); otherwise
    ISO strings for `finish_chunk` to parse and reject, as before. Integer seconds,
    milliseconds or microseconds (what agents send) are scaled in NumPy, not per event."""
    whole = _int_epoch_micros(stamps)
    if whole is not None:
        return pa.array(whole, pa.int64()).cast(_TS)
    micros = [_epoch_micros(v) for v in stamps]
    if None in micros:
        return [to_iso(v) for v in stamps]
    return pa.array(micros, pa.int64()).cast(_TS)


_MS_FROM, _US_FROM, _NS_FROM = 10**11, 10**14, 10**17  # `kestrel.ingest.times`'s thresholds


def _int_epoch_micros(stamps: Sequence[str | int | float]) -> Any:
    """`epoch_micros` of every stamp as one NumPy array when all are integers below the
    nanosecond range (the scaling is then exact: the same values as per event), else None
    (strings, floats, nanoseconds, or a value `datetime` cannot hold go the per-event way)."""
    try:
        values = pa.array(stamps)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    if values.type != pa.int64() or values.null_count:
        return None
    v = values.to_numpy()
    size = np.abs(v)
    if size.max() >= _NS_FROM or v.min() == np.iinfo(np.int64).min:
        return None
    micros = np.where(size >= _US_FROM, v, np.where(size >= _MS_FROM, v * 1000, v * 1_000_000))
    if micros.min() < _MIN_US or micros.max() > _MAX_US:
        return None
    return micros


def _epoch_micros(value: str | int | float) -> int | None:
    """`epoch_micros` for an epoch number; None for a string (an ISO time: parsed later)."""
    return None if isinstance(value, str) else epoch_micros(value)


def _derived(
    kinds: Sequence[str], read: Mapping[str, Sequence[Any]], payloads: Sequence[_Payload]
) -> dict[str, Sequence[Any]]:
    """Columns that are not plain copies: joined command lines, split user names, lower-case
    hashes and protocols, file names, and the network endpoints in initiator order."""
    users = read["username"]
    hashes = [h.lower() if h else h for h in read["sha256"]]
    files = [kind == "file" for kind in kinds]
    if "network" not in kinds:
        src_ip = src_port = dst_ip = dst_port = [None] * len(kinds)
    else:
        ends = [_endpoints(p) if isinstance(p, _Network) else _NO_ENDS for p in payloads]
        src_ip, src_port, dst_ip, dst_port = (list(c) for c in zip(*ends, strict=True))
    return {
        "process_cmdline": _cmdlines(read["cmdline"]),
        "user_domain": [
            None if u is None or "\\" not in u else u.partition("\\")[0] for u in users
        ],
        "user_name": [u if u is None or "\\" not in u else u.partition("\\")[2] for u in users],
        "process_sha256": [None if f else h for f, h in zip(files, hashes, strict=True)],
        "file_sha256": [h if f else None for f, h in zip(files, hashes, strict=True)],
        "file_name": [
            _base_name(p) if f else None for f, p in zip(files, read["file_path"], strict=True)
        ],
        "protocol": [p.lower() if p else p for p in read["protocol"]],
        "src_ip": src_ip,
        "src_port": src_port,
        "dst_ip": dst_ip,
        "dst_port": dst_port,
    }


def _action(payload: _Payload) -> str | None:
    """The action that picks the activity: the payload's own, or for network events listen
    / connect from the socket status."""
    if isinstance(payload, _Process | _File):
        return payload.action
    if isinstance(payload, _Network):
        listening = (payload.status or "").upper() == LISTEN_STATUS
        return "listen" if listening else "connect"
    return None


_NO_ENDS: tuple[None, None, None, None] = (None, None, None, None)


def _endpoints(p: _Network) -> tuple[str | None, int | None, str | None, int | None]:
    """(src_ip, src_port, dst_ip, dst_port): the initiator is the source."""
    if p.direction == "inbound":
        return p.remote_ip, p.remote_port, p.local_ip, p.local_port
    return p.local_ip, p.local_port, p.remote_ip, p.remote_port


_SPACE = re.compile(r"\s")


def _cmdlines(values: Sequence[str | list[str] | None]) -> list[str | None]:
    """`_cmdline` of each value. When every one is a list of arguments and none needs
    quotes (no empty argument, no whitespace in any), each is joined with spaces, decided
    once for the run: the arguments joined with NUL into one string, with no ``\\0\\0``
    and no NUL at either end (an empty argument) and ``str.split`` finding no whitespace in
    it (its whitespace is ``\\s``'s: both are `str.isspace`). 1,000 bench command lines:
    ~0.4 us per event against 1.25 for a `_cmdline` call each (bench/RESULTS.md, API)."""
    if set(map(type, values)) == {list}:
        text = "\0".join(chain.from_iterable(values))  # type: ignore[arg-type]
        if (
            text
            and "\0\0" not in text
            and text[0] != "\0"
            and text[-1] != "\0"
            and text.split() == [text]
        ):
            return list(map(" ".join, values))  # type: ignore[arg-type]
    return [c if c is None or isinstance(c, str) else _cmdline(c) for c in values]


def _cmdline(value: str | list[str] | None) -> str | None:
    """A command line as one string; arguments with spaces (or empty ones) are quoted so the
    string still shows where each argument ends (``sh -c "curl ... | sh"``)."""
    if value is None or isinstance(value, str):
        return value
    # Most command lines need no quoting: one search over all arguments at once (NUL is not
    # whitespace, so it keeps arguments apart) instead of one `_quote` call per argument.
    if "" not in value and _SPACE.search("\0".join(value)) is None:
        return " ".join(value)
    return " ".join(_quote(arg) for arg in value)


def _quote(arg: str) -> str:
    # One regex search instead of a generator over every character: this runs for each
    # argument of every process event on the intake path (`\s` is `str.isspace` in `re`).
    if arg and _SPACE.search(arg) is None:
        return arg
    return '"' + arg.replace('"', '\\"') + '"'


def _split_user(name: str | None) -> tuple[str | None, str | None]:
    """``DOMAIN\\user`` → (domain, user); a bare name has no domain."""
    if name is None or "\\" not in name:
        return None, name
    domain, _, user = name.partition("\\")
    return domain, user


def _base_name(path: str | None) -> str | None:
    """The last part of a POSIX or Windows path."""
    if path is None:
        return None
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _lower(value: str | None) -> str | None:
    return value.lower() if value else value
