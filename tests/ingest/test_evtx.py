"""The EVTX reader: real files from the shared datasets (skipped without them), damaged files,
and a fake parser for the failure paths the real one rarely takes."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from kestrel.events import event_id
from kestrel.ingest import Chunk, Source
from kestrel.ingest.evtx import MAX_CONSECUTIVE_FAILURES, EvtxReader
from kestrel.ingest.framing import frame_document
from kestrel.ingest.windows import normalize

SAMPLE = "Execution/sysmon_exec_from_vss_persistence.evtx"
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
FIRST_RECORD = 0x1000 + 0x200  # file header block, then the first chunk's header


def read(data: bytes, reader: EvtxReader | None = None, name: str = "t.evtx") -> list[Chunk]:
    return list((reader or EvtxReader()).read(Source(name, lambda: io.BytesIO(data))))


def counts(chunks: list[Chunk]) -> tuple[int, int, int]:
    """(records read, events, rejected)."""
    rejected = sum(len(c.rejected) for c in chunks)
    return sum(c.read for c in chunks), sum(c.batch.num_rows for c in chunks), rejected


@pytest.fixture
def sample(datasets: Path) -> bytes:
    """A small Sysmon EVTX (17 records in one chunk) from EVTX-ATTACK-SAMPLES."""
    archive = datasets / "evtx_attack_samples" / "evtx_attack_samples.zip"
    if not archive.is_file():
        pytest.skip(f"no EVTX-ATTACK-SAMPLES at {archive}")
    with zipfile.ZipFile(archive) as z:
        return z.read(SAMPLE)


@pytest.mark.datasets
def test_reads_a_real_file(sample):
    chunks = read(sample)
    assert counts(chunks) == (17, 17, 0)
    rows = chunks[0].batch.to_pylist()
    assert {r["source"] for r in rows} == {"evtx"}
    assert {r["channel"] for r in rows} == {"Microsoft-Windows-Sysmon/Operational"}
    assert all(r["event_id"] == event_id("evtx", r["raw"].encode()) for r in rows)
    assert all(json.loads(r["raw"])["Event"]["System"]["Computer"] == r["host"] for r in rows)


@pytest.mark.datasets
def test_a_damaged_record_is_rejected_and_the_rest_kept(sample):
    data = bytearray(sample)
    second = data.index(RECORD_MAGIC, data.index(RECORD_MAGIC, FIRST_RECORD) + 4)
    data[second + 34 : second + 84] = b"\xff" * 50  # inside the record's BinXML
    chunks = read(bytes(data))
    assert counts(chunks) == (17, 16, 1)
    (rejected,) = [r for c in chunks for r in c.rejected]
    assert rejected.position.record == 2
    assert rejected.reason.startswith("unreadable EVTX record: ")


@pytest.mark.datasets
def test_a_non_seekable_stream_is_read(sample):
    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(sample)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._inner.readinto(buffer)

    chunks = list(EvtxReader().read(Source("z.zip!a.evtx", lambda: io.BufferedReader(OneWay()))))
    assert counts(chunks) == (17, 17, 0)


@pytest.mark.datasets
def test_same_record_as_evtx_and_as_evtx_dump_json_is_one_event(datasets: Path):
    """SigmaHQ ships each regression EVTX with its evtx_dump JSON; evtx_dump trims the
    trailing spaces the evtx wheel keeps, and the canonical form trims them too."""
    archive = datasets / "sigma" / "sigma_regression_data.zip"
    if not archive.is_file():
        pytest.skip(f"no SigmaHQ regression data at {archive}")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if "proc_creation_win_amsi_registry_tampering" in n
                    and n.endswith(".evtx"))  # fmt: skip
        evtx, dump = z.read(name), z.read(name[: -len(".evtx")] + ".json")
    from_evtx = [r["event_id"] for c in read(evtx) for r in c.batch.to_pylist()]
    run = frame_document(Source("x.json", lambda: io.BytesIO(dump)))
    from evtx import PyEvtxParser

    parsed = next(iter(PyEvtxParser(io.BytesIO(evtx)).records_json()))
    assert parsed is not None
    parsed = parsed["data"]
    assert '.exe\\" "' in parsed and b'.exe\\" "' not in dump  # "...powershell.exe" + space
    from_json = normalize(run).batch.column("event_id").to_pylist()
    assert len(from_evtx) == 1
    assert from_evtx == from_json


@pytest.mark.parametrize(
    "data",
    [b"", b"not an evtx file", b"ElfFile\x00" + b"\x00" * 100, b"ElfFile\x00" + b"\xff" * 9000],
)
def test_a_file_that_is_not_evtx_is_one_rejected_row(data):
    chunks = read(data)
    assert counts(chunks) == (0, 0, 1)
    assert chunks[0].rejected[0].reason.startswith("not a readable EVTX file: ")


# -- a fake parser for the failure paths ---------------------------------------------------


def record(n: int) -> dict[str, Any]:
    event = {
        "Event": {
            "System": {
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WKS01",
                "EventRecordID": n,
                "TimeCreated": {"#attributes": {"SystemTime": f"2024-03-01T10:00:{n:02d}Z"}},
            },
            "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe "},
        }
    }
    return {"event_record_id": n, "timestamp": "", "data": json.dumps(event, indent=2)}


class Resumable:
    """An iterator over ``items`` that raises exception items and keeps going, as the evtx
    iterator does for a record it cannot parse."""

    def __init__(self, items: list[Any] | Iterator[Any]) -> None:
        self._items = iter(items)

    def __iter__(self) -> Resumable:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        if isinstance(item, Exception):
            raise item
        return item


def resumable(items: list[Any] | Iterator[Any]) -> EvtxReader:
    def parser(stream: IO[bytes]) -> Iterator[Any]:
        assert stream.seekable()
        return Resumable(items)

    return EvtxReader(parser=parser, batch_rows=3)


def test_parser_failures_are_rejected_by_record_number_and_reading_goes_on():
    items = [record(1), RuntimeError("bad record"), record(3), record(4), None, record(6)]
    chunks = read(b"", resumable(items))
    assert counts(chunks) == (6, 4, 2)
    rejected = [(r.position.record, r.reason) for c in chunks for r in c.rejected]
    assert rejected == [
        (2, "unreadable EVTX record: bad record"),
        (5, "the parser gave no JSON for this record (NoneType)"),
    ]
    rows = [r for c in chunks for r in c.batch.to_pylist()]
    assert [json.loads(r["raw"])["Event"]["System"]["EventRecordID"] for r in rows] == [1, 3, 4, 6]
    assert rows[0]["process_path"] == "C:\\Windows\\System32\\cmd.exe"  # trailing space trimmed


def test_a_parser_that_keeps_failing_is_given_up_on():
    def forever() -> Iterator[Any]:
        while True:
            yield RuntimeError("chunk checksum mismatch")

    chunks = read(b"", resumable(forever()))
    _, events, rejected = counts(chunks)
    assert events == 0
    assert rejected == MAX_CONSECUTIVE_FAILURES + 1
    last = chunks[-1].rejected[-1]
    assert last.reason == f"gave up after {MAX_CONSECUTIVE_FAILURES} unreadable records in a row"


def test_malformed_json_from_the_parser_is_rejected():
    chunks = read(b"", resumable([{"data": "{not json"}, record(2)]))
    assert counts(chunks) == (2, 1, 1)
    assert chunks[0].rejected[0].reason.startswith("the parser gave malformed JSON")
