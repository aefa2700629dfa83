"""Stage 2, enrich: a batch of events in, the same rows out with enrichment columns filled.

Contract: an enricher (`Enricher`) fills only the enrichment columns of the schema
(``ioc_*``, ``yara_rules``, ``geo_*``, ``rep_*``, ``threat_score``), never adds, drops or
reorders rows, and keeps its side effects (files read for YARA, HTTP for reputation, MMDB
files for GeoIP) behind an injected interface with an in-memory implementation in this
package (`MemoryFiles`, `MemoryReputation`, `MemoryGeo`), so tests and the pipeline run
without the network. Each enricher is optional; `build_stage` makes the stage from the
policy, and `EnrichStage` runs the enrichers, then the threat score (`kestrel.enrich.score`).
This package may import `kestrel.events` and `kestrel.store` only.
"""

from kestrel.enrich.base import Enricher, EnrichStage, fill_nulls, set_columns
from kestrel.enrich.feeds import load_feed, merge_feeds
from kestrel.enrich.files import LocalFiles, MemoryFiles
from kestrel.enrich.geoip import GeoIpEnricher, MaxMindLookup, MemoryGeo
from kestrel.enrich.indicators import IocFeed, classify
from kestrel.enrich.ioc import IocEnricher
from kestrel.enrich.policy import build_stage
from kestrel.enrich.reputation import MemoryReputation, ReputationEnricher, VirusTotalClient
from kestrel.enrich.score import ScoreWeights, explain_score, with_threat_score
from kestrel.enrich.yara import YaraEnricher, YaraScanner, compile_rules

# The built-in enrichers by policy name; third parties add theirs under `kestrel.enrichers`.
ENRICHERS: dict[str, type[Enricher]] = {
    "ioc": IocEnricher,
    "yara": YaraEnricher,
    "geoip": GeoIpEnricher,
    "reputation": ReputationEnricher,
}

__all__ = [
    "ENRICHERS",
    "EnrichStage",
    "Enricher",
    "GeoIpEnricher",
    "IocEnricher",
    "IocFeed",
    "LocalFiles",
    "MaxMindLookup",
    "MemoryFiles",
    "MemoryGeo",
    "MemoryReputation",
    "ReputationEnricher",
    "ScoreWeights",
    "VirusTotalClient",
    "YaraEnricher",
    "YaraScanner",
    "build_stage",
    "classify",
    "compile_rules",
    "explain_score",
    "fill_nulls",
    "load_feed",
    "merge_feeds",
    "set_columns",
    "with_threat_score",
]
