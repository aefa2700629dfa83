"""The agent reader's batch parse (one decode per run, epoch times in one cast, command lines
checked in one search) gives exactly what the record-by-record parse it replaced gave: the
same rows, ids, times and rejects with the same positions and reasons."""

import io
import json
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kestrel.config import BATCH_ROWS
from kestrel.events import event_id
from kestrel.ingest import agent
from kestrel.ingest.base import Chunk, Rejected, Source
from kestrel.ingest.framing import RawRecords, frame_json
from kestrel.ingest.mappings.agent import ACTIVITY
from kestrel.ingest.normalize import finish_chunk
from kestrel.ingest.times import to_iso


def _reference(run: RawRecords) -> Chunk:
    """The reader before issue 7's fifth pass: one msgspec decode per record, an ISO string
    per event for ``time``, ``raw`` decoded to str, one `_quote` call per argument."""
    events: list[Any] = []
    raws: list[bytes] = []
    kept: list[int] = []
    rejected = list(run.rejected)
    for i, raw in enumerate(run.raws):
        try:
            events.append(agent._decode(raw))
        except msgspec.ValidationError as exc:
            reason = f"not an agent envelope: {exc}"
            rejected.append(Rejected.of(run.position(i), reason, raw))
            continue
        raws.append(raw)
        kept.append(i)
    cols = _reference_columns(events, raws)
    cols["time"] = [to_iso(ev.timestamp) for ev in events]
    cols["raw"] = [raw.decode("utf-8") for raw in raws]
    cols["process_cmdline"] = [
        " ".join(agent._quote(a) for a in c) if isinstance(c, list) else c
        for c in (getattr(ev.payload, "cmdline", None) for ev in events)
    ]
    constants = {"source": "agent", "entity_type": "host"}
    return finish_chunk(cols, kept, rejected, run, constants)


def _reference_columns(events: list[Any], raws: list[bytes]) -> dict[str, Any]:
    """The columns as the reader built them before the sixth pass's round 2: a `getattr`
    per event and column (the reader now reads each payload's attributes in one
    `attrgetter` call and scales integer epochs in NumPy)."""
    payloads = [ev.payload for ev in events]
    hosts = [p.hostname or ev.agent_id for ev, p in zip(events, payloads, strict=True)]
    kinds = [ev.kind for ev in events]
    cols: dict[str, Any] = {
        "event_id": [event_id("agent", raw) for raw in raws],
        "class": kinds,
        "activity": [ACTIVITY[(ev.kind, agent._action(ev.payload))] for ev in events],
        "source_event": kinds,
        "host": hosts,
        "entity_id": [host.lower() for host in hosts],
        "agent_id": [ev.agent_id for ev in events],
    }
    for name in agent._COPIED:
        cols[name] = [getattr(p, name, None) for p in payloads]
    users = [agent._split_user(getattr(p, "username", None)) for p in payloads]
    hashes = [agent._lower(getattr(p, "sha256", None)) for p in payloads]
    ends = [agent._endpoints(p) if isinstance(p, agent._Network) else (None,) * 4 for p in payloads]
    files = [p if isinstance(p, agent._File) else None for p in payloads]
    cols.update({
        "user_domain": [u[0] for u in users],
        "user_name": [u[1] for u in users],
        "process_sha256": [None if f else h for f, h in zip(files, hashes, strict=True)],
        "file_sha256": [h if f else None for f, h in zip(files, hashes, strict=True)],
        "file_name": [agent._base_name(f.file_path) if f else None for f in files],
        "protocol": [agent._lower(getattr(p, "protocol", None)) for p in payloads],
        "src_ip": [e[0] for e in ends],
        "src_port": [e[1] for e in ends],
        "dst_ip": [e[2] for e in ends],
        "dst_port": [e[3] for e in ends],
    })  # fmt: skip
    return cols


def _env(ts: Any, **payload: Any) -> dict[str, Any]:
    return {"agent_id": "A-1", "event_type": "process", "timestamp": ts,
            "payload": {"action": "start", **payload}}  # fmt: skip


# Every timestamp form (seconds, ms, µs, ns, floats, negative, out of datetime's range) and
# command lines that need quoting (spaces, tabs, empty arguments, quotes) or not.
_EPOCHS = [
    _env(1714570867, cmdline=["a", "b"]),
    _env(1714570867.25, cmdline=["sh", "-c", "curl x | sh"]),
    _env(1714570867123, cmdline=["x", "", "y"]),
    _env(1714570867123456, cmdline=['say "hi"', "tab\there"]),
    _env(1714570867123456789, cmdline=[]),
    _env(0.0000015, cmdline=["\x00nul"]),
    _env(-86400, cmdline="a string"),
    _env(253402300799, cmdline=["last", "second"]),  # 9999-12-31T23:59:59
]
_ODD = [
    *_EPOCHS,
    _env(1e300),  # out of range: rejected as an unparseable time
    _env(253402300800),  # year 10000: same
    _env("2024-05-01T12:00:00"),  # no zone: UTC
    _env("not a time"),
    _env(1714570867, pid=-1),  # out of range for its column
    {"agent_id": "A-1", "event_type": "gpu", "timestamp": 1, "payload": {}},
    {"agent_id": "A-1", "event_type": "file", "timestamp": 1, "payload": []},
    {"event_type": "system", "timestamp": 1, "payload": {}},
    {"agent_id": "A-1", "event_type": "network", "timestamp": 1,
     "payload": {"direction": "inbound", "status": "listen", "local_port": 22, "x": [1]}},
]  # fmt: skip


def _body(fixtures: Path, records: list[dict[str, Any]], malformed: bool) -> bytes:
    # Records first, so the first run of 7 is all epochs (the array path), then the fixtures.
    lines = [json.dumps(r).encode() for r in records]  # with spaces: canonical strips them
    lines += fixtures.joinpath("agent", "envelopes.jsonl").read_bytes().splitlines()
    if malformed:
        lines[3:3] = [b"", b'{"agent_id": "A-1", "event_type":', b"[1, 2]", b"  "]
    return b"\n".join(lines) + b"\n"


def _runs(body: bytes) -> list[RawRecords]:
    return list(frame_json(Source("t", lambda: io.BytesIO(body), len(body)), 7))


def _rejects(chunk: Chunk) -> list[tuple[Any, ...]]:
    return [(r.position, r.reason, r.raw) for r in chunk.rejected]


@pytest.mark.parametrize(
    ("records", "malformed", "as_array"),
    [(_EPOCHS, False, False), (_ODD, True, False), (_ODD, False, True)],
    ids=["epochs only", "odd and malformed lines", "JSON array"],
)
def test_batch_parse_equals_record_by_record(
    fixtures: Path, records: list[dict[str, Any]], malformed: bool, as_array: bool
):
    body = _body(fixtures, records, malformed)
    if as_array:  # pretty-printed, one document: framed by `frame_document`
        body = json.dumps([json.loads(line) for line in body.splitlines()], indent=2).encode()
    runs = _runs(body)
    assert len(runs) > 1  # several runs of 7: a good run and runs with rejects
    rows = rejects = 0
    for run in runs:
        new, old = agent.normalize(run), _reference(run)
        assert new.batch.equals(old.batch)
        assert _rejects(new) == _rejects(old) and new.read == old.read
        rows += new.batch.num_rows
        rejects += len(new.rejected)
    assert rows >= len(_EPOCHS) + 8 and (rejects > 0) == (records is _ODD)


@pytest.mark.parametrize("kind", ["process", "network", "file", "system"])
def test_one_kind_runs_equal_record_by_record(fixtures: Path, kind: str) -> None:
    """A run of one payload type reads its fields with `astuple` (not `attrgetter`): the
    same rows as the reference for each type, with the fixtures' every field."""
    lines = fixtures.joinpath("agent", "envelopes.jsonl").read_bytes().splitlines()
    same = [line for line in lines if json.loads(line).get("event_type") == kind]
    assert same, f"no {kind} envelope in the fixtures"
    run = _runs(b"\n".join(same * 3) + b"\n")[0]
    payloads = [agent._decode(raw).payload for raw in run.raws]
    assert len({type(p) for p in payloads}) == 1  # the one-type path is taken
    new, old = agent.normalize(run), _reference(run)
    assert new.batch.equals(old.batch) and _rejects(new) == _rejects(old)


# Runs of argument lists only (`_cmdlines` decides once for such a run whether any needs
# quotes): none does; then one argument somewhere that does (empty at either end or in the
# middle, whitespace that ``\\s`` and `str.isspace` know beyond ASCII, a quote with a space);
# NUL inside arguments; empty lists.
_ARGV_RUNS = [
    [["python3", "-m", "worker", "--job=1"], ["ls"], ["a", "b", "c"]],
    [["a", "b"], ["", "x"]],
    [["a", "b"], ["x", ""]],
    [["a", "b"], ["x", "", "y"]],
    [[""], ["a"]],
    [["a"], ["b\u2003c"]],
    [["a"], ["b\x1cc"]],
    [["a"], ["b\u00a0c"]],
    [["a"], ['say "hi there"']],
    [["a\x00", "b"], ["\x00c"]],
    [["a\x00b"], ["c"]],
    [[], ["a"], []],
    [[]],
]


@pytest.mark.parametrize("argvs", _ARGV_RUNS)
def test_command_lines_of_a_run_equal_one_by_one(argvs: list[list[str]]) -> None:
    """`_cmdlines` (one decision for a run of lists) equals quoting each argument."""
    one_by_one = [" ".join(agent._quote(a) for a in argv) for argv in argvs]
    assert agent._cmdlines(argvs) == one_by_one
    mixed = [*argvs, "a string", None]  # not all lists: each on its own
    assert agent._cmdlines(mixed) == [*one_by_one, "a string", None]
    records = [_env(1714570867 + i, cmdline=argv) for i, argv in enumerate(argvs)]
    run = _runs(b"\n".join(json.dumps(r).encode() for r in records) + b"\n")[0]
    new, old = agent.normalize(run), _reference(run)
    assert new.batch.equals(old.batch)
    assert new.batch.column("process_cmdline").to_pylist() == one_by_one


def test_event_ids_equal_event_id() -> None:
    """The reader's ids (one hash object copied per record) are `event_id("agent", raw)`,
    and the shared hash object is never changed by them."""
    raws = [b'{"a":1}', b"", "\u00e9".encode() * 100]
    assert agent._event_ids(raws) == [event_id("agent", raw) for raw in raws]
    assert agent._event_ids(raws) == [event_id("agent", raw) for raw in raws]


def test_epoch_times_take_the_array_path_and_match_iso():
    """The all-epoch run builds its times as an array (the fast path is really taken)."""
    stamps: list[str | int | float] = [e["timestamp"] for e in _EPOCHS]
    times = agent._times(stamps)
    assert not isinstance(times, list)
    assert [t.isoformat() for t in times.to_pylist()] == [to_iso(s) for s in stamps]
    assert isinstance(agent._times([*stamps, 1e300]), list)


@pytest.mark.parametrize(
    "stamps",
    [
        [1714570867, 1714570867123, 1714570867123456, -86400, 0, 253402300799],
        [-62135596800, 99_999_999_999, 10**11, 10**14 - 1, 10**14, 10**17 - 1],
        [1714570867000 + i for i in range(50)],
    ],
    ids=["every unit", "each threshold and the first second", "agent milliseconds"],
)
def test_integer_epochs_scale_in_numpy_like_one_by_one(stamps: list[int]) -> None:
    """Integer seconds / ms / µs take the NumPy path, with `epoch_micros`'s values."""
    assert agent._int_epoch_micros(stamps) is not None
    times = agent._times(stamps)
    assert not isinstance(times, list)
    assert [t.isoformat() for t in times.to_pylist()] == [to_iso(s) for s in stamps]


@pytest.mark.parametrize(
    "stamps",
    [[1, 10**17], [1, -99_999_999_999], [1, -62135596801], [1, 2.5], [1, "2024-05-01"], [2**63]],
)
def test_other_epochs_go_one_by_one(stamps: list[Any]) -> None:
    """Nanoseconds, out of range, floats, strings: not the NumPy path (same results)."""
    assert agent._int_epoch_micros(stamps) is None
    times = agent._times(stamps)
    got = times if isinstance(times, list) else [t.isoformat() for t in times.to_pylist()]
    assert got == [to_iso(s) for s in stamps]


_LINE_CASES = {
    "compact": b'{"a":1}\n{"b":[1,2]}\n',
    "spaces, CRLF, no final newline": b'{"a": 1} \r\n\t{"b" : [1, 2]}',
    "blank line": b'{"a":1}\n\n{"b":2}\n',
    "two values on a line": b'{"a":1}\n{"b":2} {"c":3}\n{"d":4}\n',
    "a value across lines": b'{"a":[1,\n2]}\n{"b":2}\n',
    "values that balance across lines": b'{"a":[1\n2]},{"b":3}\n{"c":4}\n',
    "non-objects": b'{"a":1}\n[1,2]\n3\n"s"\n',
    "malformed": b'{"a":1}\n{"b":\n{"c":3}\n',
    "byte order mark": b'\xef\xbb\xbf{"a":1}\n{"b":2}\n',
}


@pytest.mark.parametrize("body", list(_LINE_CASES.values()), ids=list(_LINE_CASES))
def test_reader_framing_equals_frame_json(fixtures: Path, body: bytes):
    """The reader's whole-body framing of JSON Lines gives `frame_json`'s runs (or leaves the
    body to it): compared on bodies at every edge of its checks, and the fixtures."""
    good = fixtures.joinpath("agent", "envelopes.jsonl").read_bytes()
    for data in (body, good + body, good * 3):
        source = Source("t", partial(io.BytesIO, data), len(data))
        got = list(agent.AgentEnvelopeReader().read(source))
        want = [_reference(run) for run in frame_json(source, BATCH_ROWS)]
        assert len(got) == len(want)
        for new, old in zip(got, want, strict=True):
            assert new.batch.equals(old.batch)
            assert _rejects(new) == _rejects(old) and new.read == old.read
    whole = agent._whole_lines(Source("t", lambda: io.BytesIO(good * 3)), 7)
    assert whole is not None and [len(r.raws) for r in whole] == [7, 7, 7, 3]


def test_a_record_that_is_not_utf8_is_rejected_alone():
    """Bytes that are not UTF-8 in a field the contract does not name crashed the reader
    (``raw`` could not be decoded); now that record is rejected and the others are kept."""
    good = json.dumps(_env(1714570867)).encode()
    bad = b'{"agent_id":"A-1","event_type":"system","timestamp":1,"payload":{},"x":"\xff"}'
    body = b"\n".join([good, bad, good.replace(b"A-1", b"A-2")]) + b"\n"
    source = Source("t", lambda: io.BytesIO(body), len(body))
    [chunk] = list(agent.AgentEnvelopeReader().read(source))
    assert chunk.batch.column("agent_id").to_pylist() == ["A-1", "A-2"]
    [reject] = chunk.rejected
    assert (reject.position.line, reject.position.record) == (2, 2)
    assert reject.reason.startswith("not UTF-8: ")
