"""YARA: content (never the path string) is scanned; bad rule files are reported and skipped;
size limits, timeouts and the cache by hash; the enricher over a batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.enrich.cache import MemoryCache
from kestrel.enrich.files import MemoryFiles
from kestrel.enrich.yara import YaraEnricher, YaraScanner, compile_rules
from kestrel.errors import ConfigError
from kestrel.events import make_batch

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "enrich" / "rules"
MARKER = b"KESTREL-MALWARE-MARKER"


@pytest.fixture(scope="module")
def scanner() -> YaraScanner:
    return YaraScanner(compile_rules([RULES]), max_bytes=1024)


def test_broken_file_reported_and_skipped():
    compiled = compile_rules([RULES])
    assert [f.path for f in compiled.failures] == ["broken.yar"]
    assert compiled.files == 2 and compiled.rule_count == 2


def test_no_rule_files_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError):
        compile_rules([tmp_path])


def test_matches_file_bytes_not_the_path(scanner: YaraScanner, tmp_path: Path):
    """The ancestor's defect: it scanned the path string. A file *named* like the marker
    with clean content must not match; a clean name with the marker inside must."""
    named = tmp_path / MARKER.decode()
    named.write_bytes(b"nothing to see")
    inside = tmp_path / "report.txt"
    inside.write_bytes(b"header " + MARKER + b" trailer")
    assert scanner.scan_file(str(named)).hits == ()
    hit = scanner.scan_file(str(inside)).hits
    assert [h.rule for h in hit] == ["Kestrel_Test_Marker"]
    assert hit[0].strings == (("$marker", 7, MARKER),)  # identifier, offset, bytes


def test_filename_external_narrows_but_content_decides(scanner: YaraScanner):
    body = b"function Invoke-Kestrel {}"
    assert [h.rule for h in scanner.scan_bytes(body, "C:/x/run.ps1")] == [
        "Kestrel_Test_Script_Name"
    ]
    assert scanner.scan_bytes(body, "C:/x/run.txt") == ()
    assert scanner.scan_bytes(b"clean", "C:/x/Invoke-Kestrel.ps1") == ()


def test_size_limit_and_unreadable(scanner: YaraScanner):
    files = MemoryFiles({"/big": MARKER * 100})
    assert "not scanned" in (scanner.scan_file("/big", files).error or "")
    assert "not scanned" in (scanner.scan_file("/missing", files).error or "")


def test_cache_by_hash(scanner: YaraScanner):
    cache = MemoryCache()
    s = YaraScanner(scanner.compiled, cache=cache)
    first = s.scan_bytes(MARKER, "a.bin")
    assert s.scan_bytes(MARKER, "a.bin") == first
    assert (cache.misses, cache.hits) == (1, 1)


def test_timeout_is_reported(tmp_path: Path):
    slow = tmp_path / "slow.yar"
    slow.write_text(
        "rule Slow { condition: for all i in (0..filesize) : "
        "(for all j in (0..filesize) : (uint8(i) != 0xFF or uint8(j) != 0xFF)) }"
    )
    s = YaraScanner(compile_rules([slow]), timeout_s=1)
    result = s.scan_file("/f", MemoryFiles({"/f": b"a" * 20_000}))
    assert result.error == "timeout after 1s" and result.sha256 is not None


def test_enricher_scans_each_unique_file_once(scanner: YaraScanner):
    files = MemoryFiles({"/bin/evil": MARKER, "/bin/ok": b"fine"})
    batch = make_batch(
        {"event_id": ["1", "2", "3", "4", "5"],
         "class": ["process", "file", "file", "process", "network"],
         "activity": ["create", "create", "delete", "create", "connect"],
         "process_path": ["/bin/evil", None, None, "/bin/ok", "/bin/evil"],
         "file_path": [None, "/bin/evil", "/bin/evil", None, None]}, 5)  # fmt: skip
    out = YaraEnricher(scanner, files).enrich(batch)
    rule = "strings.yar:Kestrel_Test_Marker"
    assert out.column("yara_rules").to_pylist() == [rule, rule, None, None, None]


@pytest.mark.datasets
def test_signature_base_compiles_with_externals(datasets: Path):
    compiled = compile_rules([datasets / "yara_signature_base" / "signature_base_yara.zip"])
    assert compiled.failures == ()
    assert compiled.files == 741 and compiled.rule_count == 5883
