"""The bundled samples (`make run`'s input): they ingest whole, they hold the attacks the
README describes, and they are exactly what `samples/make_samples.py` writes."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kestrel.ingest import ingest_paths
from kestrel.store import DuckDBStore

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GENERATED = ("agent/endpoint.jsonl", "metrics/gpu_workloads.jsonl", "metrics/dcgm.prom",
             "metrics/nvidia-smi.csv", "cloudtrail/trail.json.gz")  # fmt: skip


@pytest.fixture
def loaded(store: DuckDBStore) -> DuckDBStore:
    report = ingest_paths([SAMPLES], store)
    for fmt, counts in report.by_format.items():
        assert counts.rejected == 0, (fmt, report.rejected[:3])
    for fmt in ("agent", "cloudtrail", "metrics"):
        assert report.by_format[fmt].stored > 0, fmt
    skipped = {Path(name).relative_to(SAMPLES).as_posix() for name, _ in report.skipped}
    assert not skipped & set(GENERATED), skipped  # README and the generator's code are skipped
    return store


def _scalar(store: DuckDBStore, sql: str) -> Any:
    return store.query(sql).column(0)[0].as_py()


def test_samples_ingest_whole_and_twice_adds_nothing(loaded: DuckDBStore):
    before = loaded.stats()
    assert ingest_paths([SAMPLES], loaded).total().stored == 0
    assert loaded.stats() == before and before.rejected == 0


def test_endpoint_sample_holds_the_miner(loaded: DuckDBStore):
    spawn = _scalar(loaded, "SELECT count(*) FROM events WHERE source = 'agent' AND "
                    "parent_name = 'gunicorn' AND process_cmdline LIKE '%curl%| sh%'")  # fmt: skip
    pool = _scalar(loaded, "SELECT count(*) FROM events WHERE process_name = 'xmrig' "
                   "AND class = 'network' AND dst_port = 3333")  # fmt: skip
    assert spawn == 1 and pool == 6


def test_gpu_sample_holds_the_off_hours_hijack(loaded: DuckDBStore):
    hijack = loaded.query(
        "SELECT count(*), min(metric_value), count(DISTINCT cloud_region) FROM events "
        "WHERE entity_id = 'ft-llama-7f3a' AND metric_name = 'gpu_util' "
        "AND instance_type = 'p5.48xlarge' AND extract(hour FROM time) < 6"
    ).to_pylist()[0]
    assert list(hijack.values()) == [36, pytest.approx(98.6, abs=0.1), 1]
    normal_max = _scalar(loaded, "SELECT max(metric_value) FROM events WHERE "
                         "metric_name = 'gpu_util' AND instance_type <> 'p5.48xlarge' "
                         "AND source_event = 'gpu_util'")  # fmt: skip
    assert isinstance(normal_max, float) and normal_max < 90


def test_cloudtrail_sample_holds_the_key_abuse(loaded: DuckDBStore):
    rows = loaded.query(
        "SELECT count(DISTINCT cloud_region) AS regions, count(cloud_error_code) AS errors, "
        "count(*) FILTER (cloud_operation = 'GetSecretValue') AS secrets, "
        "count(*) FILTER (cloud_operation IN ('StopLogging', 'CreateAccessKey')) AS persist "
        "FROM events WHERE src_ip = '203.0.113.200'"
    ).to_pylist()[0]
    assert rows == {"regions": 8, "errors": 24, "secrets": 12, "persist": 2}
    assert 150 <= _scalar(loaded, "SELECT count(*) FROM events WHERE source = 'cloudtrail'") <= 250


def test_samples_are_what_the_generator_writes(tmp_path: Path):
    out = subprocess.run([sys.executable, "-B", str(SAMPLES / "make_samples.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
