"""Build the enrichment stage from the policy's ``enrich`` section (each enricher optional).

Example policy (YAML)::

    enrich:
      ioc: {feeds: [feeds/iocs.csv, signature_base_iocs.zip]}
      yara: {rules: [rules/], max_bytes: 33554432, timeout_s: 10}
      geoip: {city_db: null, asn_db: GeoLite2-ASN.mmdb}   # null: the packaged default
      reputation: {rate_per_minute: 4, budget: 4, cache: ~/.kestrel/vt.sqlite}
      score: {geo_watch: [KP]}

An enricher whose section is absent does not run; its columns stay null.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kestrel.enrich.base import Enricher, EnrichStage
from kestrel.errors import ConfigError


def build_stage(section: Mapping[str, Any]) -> EnrichStage:
    """The stage for one policy ``enrich`` section."""
    unknown = set(section) - {*_BUILDERS, "score"}
    if unknown:
        raise ConfigError(f"unknown enrichers in policy: {sorted(unknown)}")
    enrichers = [
        _BUILDERS[name](dict(section[name] or {})) for name in _BUILDERS if name in section
    ]
    return EnrichStage(enrichers)


def _ioc(cfg: dict[str, Any]) -> Enricher:
    from kestrel.enrich.feeds import load_feed, merge_feeds
    from kestrel.enrich.ioc import IocEnricher

    return IocEnricher(merge_feeds(load_feed(Path(p).expanduser()) for p in cfg["feeds"]))


def _yara(cfg: dict[str, Any]) -> Enricher:
    from kestrel.enrich.yara import YaraEnricher, YaraScanner, compile_rules

    compiled = compile_rules([Path(p).expanduser() for p in cfg["rules"]])
    scanner = YaraScanner(compiled, max_bytes=int(cfg.get("max_bytes", 32 * 1024 * 1024)),
                          timeout_s=int(cfg.get("timeout_s", 10)))  # fmt: skip
    return YaraEnricher(scanner)


def _geoip(cfg: dict[str, Any]) -> Enricher:
    from kestrel.enrich.geoip import GeoIpEnricher, MaxMindLookup

    paths = {k: Path(cfg[k]).expanduser() if cfg.get(k) else None for k in ("city_db", "asn_db")}
    return GeoIpEnricher(MaxMindLookup(**paths))


def _reputation(cfg: dict[str, Any]) -> Enricher:
    from kestrel.config import home
    from kestrel.enrich.cache import DiskCache
    from kestrel.enrich.reputation import ReputationEnricher, VirusTotalClient

    cache = DiskCache(Path(cfg.get("cache") or home() / "reputation.sqlite").expanduser())
    client = VirusTotalClient(cache=cache, rate_per_minute=float(cfg.get("rate_per_minute", 4)))
    return ReputationEnricher(client, budget=int(cfg.get("budget", 4)))


_BUILDERS = {"ioc": _ioc, "yara": _yara, "geoip": _geoip, "reputation": _reputation}
