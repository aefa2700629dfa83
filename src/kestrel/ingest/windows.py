"""Windows event records → schema columns: one normalizer for every shape Kestrel reads.

Three shapes carry the same event: the ``evtx`` package's / ``evtx_dump``'s JSON
(``{"Event": {"System": ..., "EventData": ...}}``), Winlogbeat (``{"winlog": {...}}``) and
NXLog / Logstash flat records (System and EventData fields side by side, as in the OTRF
data). Each shape only has to say where the header is (`evtx_head`, `winlogbeat_head`,
`flat_head`); the mapping from EventData fields to columns is shared and comes from the
tables in `kestrel.ingest.mappings` (``sysmon``, ``security``, ``powershell``).

Records go straight into per-column lists (no object per event besides the decoded dict);
names derived from paths and the entity id are computed per batch with Arrow kernels. An
event the tables do not know is still kept (class ``other``, raw whole); only a record
without a usable EventID or time is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from kestrel.events import Batch
from kestrel.events.ids import event_id
from kestrel.ingest.base import Chunk, Rejected
from kestrel.ingest.framing import RawRecords
from kestrel.ingest.normalize import finish_chunk
from kestrel.ingest.windows_plan import TARGET_COLUMNS, kind_of, plan_for, sid, text

Head = tuple[Any, Any, Any, Any, Any, Any, Mapping[str, Any]]
"""(time, EventID, channel, provider, host, System user SID, EventData fields)."""

_EMPTY: Mapping[str, Any] = {}
_FIXED = ("event_id", "time", "class", "activity", "outcome", "source", "source_event",
          "host", "channel", "provider", "event_code", "raw")  # fmt: skip
_COLUMNS = tuple(dict.fromkeys((*_FIXED, *TARGET_COLUMNS)))
_decode = msgspec.json.Decoder().decode

# evtx_dump (since evtx 0.8.5, omerbenamram/evtx#249) trims the trailing spaces the parser used
# to leave in string values; the `evtx` wheel still keeps them. Trimming them in the canonical
# form makes an EVTX record and its evtx_dump JSON the same event. In canonical JSON a space
# right before an unescaped quote can only end a string, so this is exact.
_TRAILING_SPACES = re.compile(rb" +\"")
EVTX_PREFIX = b'{"Event":'


def evtx_canonical(canonical: bytes) -> bytes:
    """The canonical bytes of an EVTX record with trailing spaces trimmed from its strings.

    >>> evtx_canonical(b'{"Event":{"CommandLine":"cmd.exe ","Path":"C:\\\\ \\\\"}}')
    b'{"Event":{"CommandLine":"cmd.exe","Path":"C:\\\\ \\\\"}}'
    """
    return _TRAILING_SPACES.sub(b'"', canonical) if b' "' in canonical else canonical


def normalize(run: RawRecords, evtx_only: bool = False) -> Chunk:
    """Map a run of framed records (canonical JSON) to a chunk. Records starting with
    ``{"Event":`` (or all, with ``evtx_only``) are EVTX records: source ``evtx``, whatever
    reader framed them, so the same record read from an .evtx file or from its JSON dump is one
    event with one id."""
    columns = WindowsColumns(len(run.raws))
    rejected = list(run.rejected)
    for i, raw in enumerate(run.raws):
        is_evtx = evtx_only or raw.startswith(EVTX_PREFIX)
        if is_evtx:
            raw = evtx_canonical(raw)
        doc = _decode(raw)
        if not isinstance(doc, dict):
            rejected.append(Rejected.of(run.position(i), "not a JSON object", raw))
            continue
        source = "evtx" if is_evtx else "winlog-json"
        reason = columns.add(i, raw, event_id(source, raw), source, _head(doc, is_evtx))
        if reason:
            rejected.append(Rejected.of(run.position(i), reason, raw))
    return columns.finish(rejected, run)


# -- where each shape keeps the header -----------------------------------------------------


def _head(doc: Mapping[str, Any], is_evtx: bool) -> Head:
    if is_evtx:
        return evtx_head(doc)
    return winlogbeat_head(doc) if "winlog" in doc else flat_head(doc)


def evtx_head(doc: Mapping[str, Any]) -> Head:
    """``{"Event": {"System": ..., "EventData" | "UserData": ...}}`` (attributes either under
    ``#attributes`` or, with ``--separate-json-attributes``, in ``<Element>_attributes``)."""
    event = _dict(doc.get("Event"))
    system = _dict(event.get("System"))
    provider = _attr(system, "Provider", "Name") or _attr(system, "Provider", "EventSourceName")
    return (
        _attr(system, "TimeCreated", "SystemTime"), system.get("EventID"), system.get("Channel"),
        provider, system.get("Computer"), _attr(system, "Security", "UserID"), _event_data(event),
    )  # fmt: skip


def winlogbeat_head(doc: Mapping[str, Any]) -> Head:
    """``{"@timestamp", "winlog": {"event_id", "channel", "provider_name", "computer_name",
    "event_data", "user": {"identifier"}}}``."""
    winlog = _dict(doc.get("winlog"))
    code = winlog.get("event_id")
    if code is None:
        code = _dict(doc.get("event")).get("code")
    host = winlog.get("computer_name") or _host(doc.get("host"))
    sid = _dict(winlog.get("user")).get("identifier")
    return (doc.get("@timestamp"), code, winlog.get("channel"), winlog.get("provider_name"),
            host, sid, _dict(winlog.get("event_data")))  # fmt: skip


def flat_head(doc: Mapping[str, Any]) -> Head:
    """NXLog / Logstash: System fields beside the EventData fields (``Hostname`` is the
    event's host; ``host`` is often the collector, so it is the last resort)."""
    host = doc.get("Hostname") or doc.get("Computer") or _host(doc.get("host"))
    return (_flat_time(doc), doc.get("EventID"), doc.get("Channel"), doc.get("SourceName"),
            host, doc.get("UserID"), doc)  # fmt: skip


def _flat_time(doc: Mapping[str, Any]) -> str | None:
    """Sysmon's own ``UtcTime`` (UTC without a zone) first: ``@timestamp`` is when the
    collector saw the event. Then ``@timestamp``; then ``TimeCreated`` / ``EventTime``, which
    some exports write in the host's local time without a zone: read as UTC, for want of one."""
    utc = doc.get("UtcTime")
    if isinstance(utc, str) and utc:
        return utc + "Z"
    for key in ("@timestamp", "TimeCreated", "EventTime"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            return value if _ZONED.search(value) else value + "Z"
    return None


_ZONED = re.compile(r"(?:[Zz]|[+-]\d\d:?\d\d)$")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _attr(system: Mapping[str, Any], element: str, name: str) -> Any:
    attrs = _dict(system.get(element)).get("#attributes")
    if attrs is None:
        attrs = system.get(element + "_attributes")
    return _dict(attrs).get(name)


def _event_data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """Named EventData fields; else the single element of UserData (``LogFileCleared``
    ...); unnamed EventData text is offered as ``Data``."""
    data = event.get("EventData")
    if isinstance(data, dict):
        return data
    for inner in _dict(event.get("UserData")).values():
        if isinstance(inner, dict):
            return inner
    return {"Data": data} if data is not None else _EMPTY


def _host(value: Any) -> Any:
    return value.get("name") if isinstance(value, dict) else value


# -- the columns ---------------------------------------------------------------------------


class WindowsColumns:
    """Column lists for one run, filled by record index: a mapping step writes its column
    only while it is still empty, so the first source field present wins."""

    def __init__(self, size: int) -> None:
        self.n = 0
        self.kept: list[int] = []
        self.cols: dict[str, list[Any]] = {name: [None] * size for name in _COLUMNS}
        self._fixed = tuple(self.cols[name] for name in _FIXED)

    def add(self, index: int, raw: bytes, eid: str, source: str, head: Head) -> str | None:
        """Add record ``index`` of the run; return why it is rejected, or None."""
        time, code_value, channel_value, provider_value, host, user_sid, data = head
        code = _code(code_value)
        if code is None:
            return f"no usable EventID ({code_value!r})"
        if not isinstance(time, str) or not time:
            return f"no usable time ({time!r})"
        channel, provider = text(channel_value), text(provider_value)
        kind, label = kind_of(channel, provider)
        plan = plan_for(kind, code)
        if plan.refine_field is not None:
            plan = plan.refined.get(text(data.get(plan.refine_field)) or "", plan)
        i, cols, fixed = self.n, self.cols, self._fixed  # fixed: the _FIXED columns, in order
        fixed[0][i], fixed[1][i], fixed[2][i], fixed[3][i] = eid, time, plan.cls, plan.activity
        fixed[4][i], fixed[5][i], fixed[6][i] = plan.outcome, source, f"{label}:{code}"
        fixed[7][i], fixed[8][i], fixed[9][i] = text(host), channel, provider
        fixed[10][i], fixed[11][i] = code, raw
        for field, column, convert in plan.copies:
            value = data.get(field)
            if value is not None and cols[column][i] is None:
                cols[column][i] = convert(value)
        for field, step in plan.steps:
            value = data.get(field)
            if value is not None:
                step(cols, i, value)
        if plan.system_user and cols["user_id"][i] is None:
            cols["user_id"][i] = sid(user_sid)
        self.kept.append(index)
        self.n += 1
        return None

    def finish(self, rejected: list[Rejected], run: RawRecords) -> Chunk:
        """The chunk: times parsed (bad ones rejected), names and entity ids derived."""
        for values in self.cols.values():
            del values[self.n :]
        chunk = finish_chunk(self.cols, self.kept, rejected, run, {"entity_type": "host"})
        chunk.batch = derive(chunk.batch)
        return chunk


def _code(value: Any) -> int | None:
    """EventID as the shapes give it: 4688, "4688" or ``{"#text": 4688, "#attributes": ...}``."""
    if isinstance(value, dict):
        value = value.get("#text")
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < 2**32 else None
    if isinstance(value, str) and value.strip().isdecimal() and len(value) < 16:
        return _code(int(value))
    return None


# -- derived per batch ---------------------------------------------------------------------

_NAMES = (("process_name", "process_path"), ("parent_name", "parent_path"),
          ("file_name", "file_path"))  # fmt: skip
_DIRS = r"^.*[\\/]"
_NO_NAME = pa.array(["", "-"])  # a path ending in a separator; Security's "no value"


def derive(batch: Batch) -> Batch:
    """File names from Windows paths (after the last ``\\`` or ``/``) where the source gave
    none, and ``entity_id`` = lower-cased host, as whole-column Arrow kernels. Paths keep the
    source's value (Security's ``-`` too: Sigma rules compare them untouched); names do not."""
    for name, path in _NAMES:
        paths = batch.column(path)
        if paths.null_count == len(paths):
            continue
        base = pc.replace_substring_regex(paths, _DIRS, "")
        base = pc.if_else(pc.is_in(base, _NO_NAME), pa.scalar(None, pa.string()), base)
        batch = _replace(batch, name, pc.coalesce(batch.column(name), base))
    return _replace(batch, "entity_id", pc.utf8_lower(batch.column("host")))


def _replace(batch: Batch, name: str, values: Any) -> Batch:
    index = batch.schema.get_field_index(name)
    return batch.set_column(index, batch.schema.field(index), values)
