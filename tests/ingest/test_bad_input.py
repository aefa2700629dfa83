"""Bad input never stops ingest: good records are kept, bad ones are rejected with position."""

from __future__ import annotations

import gzip
import io
import json
import resource
from pathlib import Path
from typing import IO

import pytest

from kestrel import config
from kestrel.errors import SourceError
from kestrel.ingest import Source, ingest_paths, read_source
from kestrel.ingest.framing import frame_lines
from kestrel.store import DuckDBStore


def _ct(i: int, **extra: object) -> dict[str, object]:
    record: dict[str, object] = {
        "eventVersion": "1.08", "eventTime": f"2024-07-31T12:{i % 60:02d}:00Z",
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "eventID": f"id-{i}",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/alice"},
    }  # fmt: skip
    record.update(extra)
    return record


def _lines(records: list[str]) -> bytes:
    return ("\n".join(records) + "\n").encode()


def _ingest(store: DuckDBStore, path: Path, fmt: str = "auto"):
    report = ingest_paths([path], store, fmt)
    return report, report.total()


def test_malformed_json_line_is_rejected_with_its_line(tmp_path: Path, store: DuckDBStore):
    good = [json.dumps(_ct(i)) for i in range(3)]
    path = tmp_path / "trail.jsonl"
    path.write_bytes(_lines([good[0], '{"eventName": "Broken", ', good[1], good[2]]))
    report, total = _ingest(store, path)
    assert (total.read, total.stored, total.rejected) == (4, 3, 1)
    bad = report.rejected[0]
    assert bad.position.line == 2 and bad.position.record == 2
    assert "malformed JSON" in bad.reason
    assert store.stats().rejected == 1


def test_wrong_typed_field_is_rejected_and_named(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "trail.jsonl"
    path.write_bytes(_lines([json.dumps(_ct(0)), json.dumps(_ct(1, awsRegion=42))]))
    report, total = _ingest(store, path)
    assert (total.stored, total.rejected) == (1, 1)
    assert "awsRegion" in report.rejected[0].reason
    assert report.rejected[0].position.line == 2


def test_unparseable_time_is_rejected(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "trail.jsonl"
    path.write_bytes(_lines([json.dumps(_ct(0, eventTime="yesterday")), json.dumps(_ct(1))]))
    report, total = _ingest(store, path)
    assert (total.stored, total.rejected) == (1, 1)
    assert "yesterday" in report.rejected[0].reason and report.rejected[0].position.line == 1


def test_truncated_json_array_keeps_records_before_the_damage(tmp_path: Path, store: DuckDBStore):
    text = json.dumps({"Records": [_ct(i) for i in range(5)]}, indent=2)
    path = tmp_path / "delivery.json"
    path.write_text(text[: int(len(text) * 0.7)])
    report, total = _ingest(store, path, "cloudtrail")
    assert total.rejected == 1 and 1 <= total.stored < 5
    assert report.rejected[0].position.record == total.stored + 1
    assert report.rejected[0].position.line is not None


def test_truncated_gzip_keeps_what_was_readable(tmp_path: Path, store: DuckDBStore):
    data = gzip.compress(_lines([json.dumps(_ct(i)) for i in range(2000)]))
    path = tmp_path / "trail.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    report, total = _ingest(store, path)
    assert 0 < total.stored < 2000
    assert any("damaged compressed stream" in r.reason for r in report.rejected)


def test_long_line_is_skipped_without_holding_it(
    tmp_path: Path, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(config, "MAX_RECORD_BYTES", 1024)
    huge = '{"eventName": "' + "A" * 10_000 + '"}'
    path = tmp_path / "trail.jsonl"
    path.write_bytes(_lines([json.dumps(_ct(0)), huge, json.dumps(_ct(1))]))
    report, total = _ingest(store, path)
    assert (total.stored, total.rejected) == (2, 1)
    assert report.rejected[0].position.line == 2
    assert "longer than 1024 bytes" in report.rejected[0].reason


class _EndlessLine(io.RawIOBase):
    """A stream of one good line, then a line of ``size`` bytes, then one good line,
    produced on the fly (nothing of that size is ever on disk or in memory)."""

    def __init__(self, size: int) -> None:
        self._parts = [_lines([json.dumps(_ct(0))]), None, b"\n" + _lines([json.dumps(_ct(1))])]
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        while self._parts:
            part = self._parts[0]
            if part is None:
                if self._left > 0:
                    take = min(n if n > 0 else 4 << 20, self._left)
                    self._left -= take
                    return b"x" * take
                self._parts.pop(0)
                continue
            self._parts.pop(0)
            return part
        return b""


@pytest.mark.slow
def test_two_gigabyte_line_is_rejected_in_bounded_memory():
    size = 2 * 1024**3 + 17
    source = Source("huge.jsonl", lambda: _open_endless(size))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs = list(frame_lines(source, batch_rows=1000))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    raws = [r for run in runs for r in run.raws]
    rejected = [r for run in runs for r in run.rejected]
    assert len(raws) == 2 and len(rejected) == 1
    assert rejected[0].position.line == 2
    assert grown_mb < 400, f"peak memory grew {grown_mb:.0f} MB for a 2 GB line"


def _open_endless(size: int) -> IO[bytes]:
    return io.BufferedReader(_EndlessLine(size))


def test_unknown_format_named_file_is_a_clear_error(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    with pytest.raises(SourceError, match="unknown format"):
        read_source(Source(str(path), lambda: path.open("rb")))
    report = ingest_paths([tmp_path], store)  # inside a folder it is skipped and listed
    assert report.skipped and "unknown format" in report.skipped[0][1]


def test_unreadable_zip_is_a_source_error(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(SourceError, match="unreadable zip"):
        ingest_paths([path], store)


def test_rejections_are_not_duplicated_by_reingest(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "trail.jsonl"
    path.write_bytes(_lines(["{not json", json.dumps(_ct(0))]))
    _ingest(store, path)
    _ingest(store, path)
    stats = store.stats()
    assert (stats.total, stats.rejected) == (1, 1)
