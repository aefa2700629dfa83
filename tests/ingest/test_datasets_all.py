"""Everything under shared/datasets that is telemetry ingests with 0 rejected records."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.ingest import ingest_paths
from kestrel.store import DuckDBStore

# What is in shared/datasets but is not telemetry (rules, manifests, metadata, licences,
# STIX bundles the hunting language reads, Panther's test-case wrappers, MITRE tables):
# skipped by sniffing. JSON is only allowed from the folders that hold no telemetry.
NOT_TELEMETRY = (".yml", ".yaml", ".md", ".csv", ".txt", ".GPL", "LICENSE", ".raw", ".yar",
                 ".yara")  # fmt: skip
NOT_TELEMETRY_FOLDERS = ("/kestrel_lang/", "/mitre/", "/panther_cloudtrail_tests/",
                         "!tests/logsource.json")  # fmt: skip


def _not_telemetry(name: str) -> bool:
    return name.endswith(NOT_TELEMETRY) or any(f in name for f in NOT_TELEMETRY_FOLDERS)


@pytest.mark.slow
@pytest.mark.datasets
def test_every_telemetry_file_ingests_without_rejects(datasets: Path, store: DuckDBStore):
    report = ingest_paths([datasets], store)
    total = report.total()
    assert total.rejected == 0, [str(r.position) for r in report.rejected[:5]]
    assert {"evtx", "winlog-json", "cloudtrail"} <= set(report.by_format)
    assert not [s for s, _ in report.skipped if s.endswith((".evtx", ".jsonl"))]
    unexpected = [s for s, _ in report.skipped if not _not_telemetry(s)]
    assert unexpected == []
    assert store.stats().total == total.stored
