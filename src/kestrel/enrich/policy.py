"""Build the enrichment stage from the policy's ``enrich`` section (each enricher optional).

Example policy (YAML)::

    enrich:
      ioc: {feeds: [feeds/iocs.csv, signature_base_iocs.zip]}
      yara: {rules: [rules/], max_bytes: 33554432, timeout_s: 10}
      geoip: {city_db: null, asn_db: GeoLite2-ASN.mmdb}   # null: the packaged default
      reputation: {rate_per_minute: 4, budget: 4, cache: ~/.kestrel/vt.sqlite}
      score: {geo_watch: [KP]}

An enricher whose section is absent does not run; its columns stay null. With no policy
file (or one without an ``enrich`` section), `default_section` decides: IOC feeds when
``$KESTREL_HOME/feeds`` holds any, GeoIP when the packaged city database is installed, YARA
when ``$KESTREL_HOME/yara`` holds rules (files an event names are scanned only when readable
here), reputation only with ``VT_API_KEY`` set.
"""

from __future__ import annotations

import os
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


def default_section(root: Path | None = None) -> dict[str, Any]:
    """The enrichers that can run here without configuration (see the module docstring).

    Why conditional: an enricher without its data (no feed, no rules, no key) would either
    fail or spend time on nothing, and detection must run on a bare install."""
    from kestrel.config import home
    from kestrel.enrich.geoip import default_city_db

    base = root or home()
    feeds = sorted(str(p) for p in (base / "feeds").glob("*") if p.is_file())
    section: dict[str, Any] = {"ioc": {"feeds": feeds}} if feeds else {}
    if default_city_db() is not None:
        section["geoip"] = {}
    if any((base / "yara").rglob("*.yar*")):
        section["yara"] = {"rules": [str(base / "yara")]}
    if os.environ.get("VT_API_KEY"):
        section["reputation"] = {}
    return section


def load_section(path: Path | None) -> dict[str, Any]:
    """The ``enrich`` section of a policy YAML file; the defaults when there is none.
    Relative feed and rule paths are taken from the policy file's folder."""
    import yaml

    if path is None:
        return default_section()
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a policy is a YAML mapping")
    if "enrich" not in doc:
        return default_section()
    return _rebased(dict(doc["enrich"] or {}), path.parent)


def _rebased(section: dict[str, Any], folder: Path) -> dict[str, Any]:
    for name, key in (("ioc", "feeds"), ("yara", "rules")):
        cfg = section.get(name)
        if isinstance(cfg, dict) and key in cfg:
            paths = [Path(p).expanduser() for p in cfg[key]]
            cfg[key] = [str(p if p.is_absolute() else folder / p) for p in paths]
    return section


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
