"""What the enrichers remember between batches: a file unchanged since it was scanned is not
read again (a changed one is), an address is looked up once, a value the reputation client
could not answer is left alone for a while, and a client without a key is not asked."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import kestrel.enrich.cache
from kestrel.enrich import (
    GeoIpEnricher,
    LocalFiles,
    MemoryGeo,
    MemoryReputation,
    ReputationEnricher,
    YaraEnricher,
    YaraScanner,
    compile_rules,
)
from kestrel.enrich.geoip import GeoRecord
from kestrel.enrich.reputation import Verdict
from kestrel.events import Batch, make_batch

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"
MARKER = b"KESTREL-MALWARE-MARKER"


class CountingFiles(LocalFiles):
    def __init__(self) -> None:
        self.reads = 0

    def read(self, path: str, max_bytes: int) -> bytes:
        self.reads += 1
        return super().read(path, max_bytes)


def _file_events(*paths: str) -> Batch:
    n = len(paths)
    return make_batch({"event_id": [str(i) for i in range(n)], "class": ["file"] * n,
                       "activity": ["create"] * n, "file_path": list(paths)}, n)  # fmt: skip


def test_unchanged_file_is_not_read_again_changed_one_is(tmp_path: Path) -> None:
    sample = tmp_path / "drop.bin"
    sample.write_bytes(b"clean content")
    files = CountingFiles()
    rules = compile_rules([FIX / "rules" / "strings.yar"])
    enricher = YaraEnricher(YaraScanner(rules), files)
    for _ in range(3):
        out = enricher.enrich(_file_events(str(sample), str(sample)))
    assert files.reads == 1 and out.column("yara_rules").to_pylist() == [None, None]
    sample.write_bytes(b"now with " + MARKER)
    os.utime(sample, ns=(1, 1))  # a different mtime even on a coarse clock
    out = enricher.enrich(_file_events(str(sample)))
    assert files.reads == 2 and out.column("yara_rules")[0].as_py().endswith("Kestrel_Test_Marker")


def test_missing_file_is_left_alone_until_recheck(tmp_path: Path) -> None:
    files = CountingFiles()
    now = [0.0]
    rules = compile_rules([FIX / "rules" / "strings.yar"])
    enricher = YaraEnricher(YaraScanner(rules), files, recheck_s=60, clock=lambda: now[0])
    gone = str(tmp_path / "gone.exe")
    enricher.enrich(_file_events(gone))
    enricher.enrich(_file_events(gone))
    assert files.reads == 1
    now[0] = 61.0
    enricher.enrich(_file_events(gone))
    assert files.reads == 2


def _net(*ips: str) -> Batch:
    n = len(ips)
    return make_batch({"event_id": [str(i) for i in range(n)], "class": ["network"] * n,
                       "dst_ip": list(ips)}, n)  # fmt: skip


def test_geoip_looks_each_address_up_once() -> None:
    asked: list[str] = []

    class Counting(MemoryGeo):
        def lookup(self, ip: str) -> GeoRecord | None:
            asked.append(ip)
            return super().lookup(ip)

    enricher = GeoIpEnricher(Counting({"81.2.69.0/24": GeoRecord("NL")}))
    for _ in range(3):
        out = enricher.enrich(_net("81.2.69.1", "10.0.0.1", "81.2.69.1", "8.8.8.8"))
    assert out.column("geo_country").to_pylist() == ["NL", "private", "NL", None]
    assert sorted(asked) == ["8.8.8.8", "81.2.69.1"]


class CountingReputation(MemoryReputation):
    asked: list[str]

    def lookup(self, kind: str, value: str) -> Verdict | None:
        self.asked.append(value)
        return super().lookup(kind, value)


def test_reputation_asks_once_and_retries_unanswered_later() -> None:
    rep = CountingReputation({("ip", "8.8.4.4"): Verdict(3, 90)})
    rep.asked = []
    now = [0.0]
    enricher = ReputationEnricher(rep, budget=10, retry_s=100, clock=lambda: now[0])
    for _ in range(3):
        out = enricher.enrich(_net("8.8.4.4", "1.1.1.1", "10.1.1.1"))
    assert out.column("rep_malicious").to_pylist() == [3, None, None]
    assert sorted(rep.asked) == ["1.1.1.1", "8.8.4.4"]  # the private address never
    now[0] = 150.0
    enricher.enrich(_net("8.8.4.4", "1.1.1.1"))
    assert sorted(rep.asked) == ["1.1.1.1", "1.1.1.1", "8.8.4.4"]


def test_unusable_client_is_not_asked() -> None:
    rep = CountingReputation({("ip", "8.8.4.4"): Verdict(3, 90)})
    rep.asked = []
    object.__setattr__(rep, "usable", lambda: False)
    out = ReputationEnricher(rep).enrich(_net("8.8.4.4"))
    assert rep.asked == [] and out.column("rep_malicious").to_pylist() == [None]


def test_frame_memo_doctest() -> None:
    result = doctest.testmod(kestrel.enrich.cache)
    assert result.attempted > 0 and result.failed == 0
