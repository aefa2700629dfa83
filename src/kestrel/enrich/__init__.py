"""Stage 2, enrich: a batch of events in, the same rows out with enrichment columns filled.

Contract: an enricher (`Enricher`) fills only the enrichment columns of the schema
(``ioc_*``, ``yara_rules``, ``geo_*``, ``rep_*``, ``threat_score``), never adds, drops or
reorders rows, and keeps its side effects (files read for YARA, HTTP for reputation, MMDB
files for GeoIP) behind an injected interface with an in-memory implementation in this
package, so tests and the pipeline run without the network. Each enricher is optional;
`EnrichStage` runs those the policy names, then the threat score (`kestrel.enrich.score`).
This package may import `kestrel.events` and `kestrel.store` only.
"""

from kestrel.enrich.base import Enricher, EnrichStage, fill_nulls, set_columns
from kestrel.enrich.feeds import load_feed, merge_feeds
from kestrel.enrich.indicators import IocFeed, classify
from kestrel.enrich.ioc import IocEnricher
from kestrel.enrich.score import ScoreWeights, with_threat_score

__all__ = [
    "EnrichStage",
    "Enricher",
    "IocEnricher",
    "IocFeed",
    "ScoreWeights",
    "classify",
    "fill_nulls",
    "load_feed",
    "merge_feeds",
    "set_columns",
    "with_threat_score",
]
