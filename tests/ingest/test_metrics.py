"""The metrics reader: the three shapes, their mappings, rejections and idempotence."""

import json
from pathlib import Path
from typing import Any

import pytest

from kestrel import config
from kestrel.errors import SourceError
from kestrel.events import event_id
from kestrel.ingest import Source, ingest_paths
from kestrel.ingest.metrics import detect_shape
from kestrel.ingest.metrics_prom import NO_TIME
from kestrel.ingest.sniff import sniff
from kestrel.store import DuckDBStore, EventFilter

Row = dict[str, Any]


def _events(store: DuckDBStore) -> list[Row]:
    return store.events(EventFilter(source="metrics")).to_pylist()


def _one(rows: list[Row], **where: Any) -> Row:
    found = [r for r in rows if all(r[k] == v for k, v in where.items())]
    assert len(found) == 1, (where, found)
    return found[0]


def _source(path: Path) -> Source:
    return Source(str(path), lambda: path.open("rb"))


# -- dcgm-exporter Prometheus text -----------------------------------------------------------


@pytest.fixture
def dcgm(fixtures: Path, store: DuckDBStore) -> list[Row]:
    report = ingest_paths([fixtures / "metrics" / "dcgm.prom"], store)
    counts = report.by_format["metrics"]
    assert (counts.read, counts.stored, counts.rejected) == (7, 6, 0)  # NaN sample skipped
    return _events(store)


def test_dcgm_families_get_kestrel_names_units_and_context(dcgm: list[Row]):
    util = _one(dcgm, metric_name="gpu_util", gpu_index=0)
    assert (util["class"], util["activity"], util["source"]) == ("metric", "sample", "metrics")
    assert (util["metric_value"], util["metric_unit"]) == (87.0, "percent")
    assert util["source_event"] == "DCGM_FI_DEV_GPU_UTIL"
    assert (util["host"], util["entity_type"], util["entity_id"]) == (
        "Node-1", "workload", "node-1/gpu0")  # fmt: skip
    assert util["time"].isoformat() == "2024-05-01T12:00:00+00:00"  # the scrape-time line
    raw = json.loads(util["raw"])
    assert raw["labels"]["UUID"] == "GPU-aaaa" and raw["scrape_time"] == "2024-05-01T12:00:00Z"
    power = _one(dcgm, metric_name="power_watts")
    assert (power["metric_value"], power["metric_unit"]) == (250.125, "watts")


def test_dcgm_sample_timestamp_pod_label_escapes_and_unknown_family(dcgm: list[Row]):
    stamped = _one(dcgm, metric_name="gpu_util", gpu_index=1)
    assert stamped["time"].isoformat() == "2024-05-01T12:01:00+00:00"
    fb = _one(dcgm, metric_name="fb_used")
    assert (fb["metric_unit"], fb["job_id"], fb["job_name"], fb["entity_id"]) == (
        "MiB", "trainer-7", "train", "trainer-7")  # fmt: skip
    temp = _one(dcgm, metric_name="gpu_temp")
    assert json.loads(temp["raw"])["labels"]["modelName"] == 'A "quoted" \\ name'
    assert (temp["host"], temp["metric_unit"]) == ("Node-1", "celsius")
    other = _one(dcgm, source_event="DCGM_FI_DEV_VGPU_LICENSE_STATUS")
    assert (other["metric_name"], other["metric_unit"]) == ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", None)


def test_dcgm_bad_samples_rejected_with_line(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "metrics" / "dcgm_bad.prom"], store)
    counts = report.by_format["metrics"]
    assert (counts.read, counts.stored, counts.rejected) == (8, 2, 6)
    reasons = {r.position.line: r.reason for r in report.rejected}
    assert reasons[2] == f"DCGM_FI_DEV_GPU_UTIL: {NO_TIME}"
    assert reasons[5] == "DCGM_FI_DEV_GPU_UTIL: value 'lots' is not a number"
    assert reasons[6] == "DCGM_FI_DEV_GPU_UTIL: gpu label 'first' is not an index"
    assert reasons[7] == reasons[8] == "not a Prometheus sample line"
    assert reasons[11] == "unparseable time 'soon'"
    times = sorted(r["time"].isoformat() for r in _events(store))
    assert times == ["2024-05-01T12:00:00+00:00", "2024-05-01T12:00:30+00:00"]


def test_appended_scrapes_are_distinct_events(tmp_path: Path, store: DuckDBStore):
    sample = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",Hostname="n"} 50\n'
    text = "".join(f"# kestrel-scrape-time: 2024-05-01T12:00:{s:02d}Z\n{sample}" for s in (0, 30))
    (tmp_path / "scrapes.prom").write_text(text)
    assert ingest_paths([tmp_path], store).total().stored == 2


def test_long_text_line_is_rejected_and_skipped(
    tmp_path: Path, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(config, "MAX_RECORD_BYTES", 1024)
    huge = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",Hostname="n",x="' + "a" * 5000 + '"} 1'
    good = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",Hostname="n"} 50'
    (tmp_path / "m.prom").write_text(f"# kestrel-scrape-time: 1714564800\n{huge}\n{good}\n")
    report = ingest_paths([tmp_path], store)
    assert (report.total().read, report.total().stored, report.total().rejected) == (2, 1, 1)
    assert report.rejected[0].position.line == 2
    assert report.rejected[0].reason == "line longer than 1024 bytes; skipped"
    assert _events(store)[0]["time"].isoformat() == "2024-05-01T12:00:00+00:00"


# -- nvidia-smi CSV --------------------------------------------------------------------------


def test_nvidia_smi_maps_columns_skips_na_and_reads_time_as_utc(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "metrics" / "nvidia-smi.csv"], store)
    assert (report.total().read, report.total().stored, report.total().rejected) == (2, 10, 0)
    rows = _events(store)
    util = _one(rows, metric_name="gpu_util")
    assert (util["metric_value"], util["metric_unit"], util["source_event"]) == (
        87.0, "percent", "utilization.gpu")  # fmt: skip
    assert (util["host"], util["gpu_index"], util["entity_id"]) == ("node-2", 0, "node-2/gpu0")
    assert util["time"].isoformat() == "2024-05-01T12:00:00.123000+00:00"
    power = _one(rows, metric_name="power_watts", gpu_index=1)
    assert (power["metric_value"], power["metric_unit"]) == (61.5, "watts")
    assert _one(rows, metric_name="fb_used", gpu_index=0)["metric_unit"] == "MiB"
    assert _one(rows, metric_name="gpu_temp", gpu_index=0)["metric_unit"] == "celsius"
    video = _one(rows, metric_name="clocks.video")  # unknown column: own name, header unit
    assert (video["metric_value"], video["metric_unit"]) == (1275.0, "MHz")
    assert not [r for r in rows if r["gpu_index"] == 1 and r["metric_name"] == "gpu_util"]
    raw = json.loads(util["raw"])
    assert raw["kestrel-host"] == "node-2" and raw["utilization.gpu [%]"] == "87 %"


def test_nvidia_smi_nounits_gives_the_same_readings(fixtures: Path):
    readings = []
    for name in ("nvidia-smi.csv", "nvidia-smi-nounits.csv"):
        store = DuckDBStore(":memory:")
        ingest_paths([fixtures / "metrics" / name], store)
        readings.append(
            sorted((r["gpu_index"], r["metric_name"], r["metric_value"]) for r in _events(store))
        )
        store.close()
    assert readings[0] == readings[1] and len(readings[0]) == 10


def test_nvidia_smi_bad_rows_rejected_with_line(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "metrics" / "nvidia-smi_bad.csv"], store)
    counts = report.by_format["metrics"]
    assert (counts.read, counts.stored, counts.rejected) == (7, 4, 4)
    reasons = {r.position.line: r.reason for r in report.rejected}
    assert reasons == {
        3: "expected 4 columns as in the header, got 3",
        4: "utilization.gpu: value 'busy' is not a number",
        5: "unparseable time '2024-05-01 noon'",
        6: "index 'zero' is not a GPU index",
    }
    rows = _events(store)
    assert sorted(r["metric_value"] for r in rows if r["metric_name"] == "gpu_util") == [87, 91]
    assert {r["entity_id"] for r in rows} == {"unknown/gpu0"}  # no kestrel-host line


# -- JSON rows -------------------------------------------------------------------------------


@pytest.fixture
def workloads(fixtures: Path, store: DuckDBStore) -> list[Row]:
    report = ingest_paths([fixtures / "metrics" / "workloads.jsonl"], store)
    assert (report.total().read, report.total().stored, report.total().rejected) == (4, 9, 0)
    return _events(store)


def test_json_row_gives_one_event_per_numeric_field(workloads: list[Row]):
    job = [r for r in workloads if r["instance_type"] == "p4d.24xlarge"]
    assert sorted((r["metric_name"], r["metric_value"], r["metric_unit"]) for r in job) == [
        ("gpu_util", 81.5, "percent"), ("mem_util", 50.0, "percent"),
        ("power_watts", 310.2, "watts"),
    ]  # fmt: skip
    util = _one(workloads, metric_name="gpu_util", job_id="ft-llama-7f3a")
    assert (util["entity_type"], util["entity_id"], util["job_name"]) == (
        "workload", "ft-llama-7f3a", "llm-finetune")  # fmt: skip
    assert (util["instance_type"], util["host"], util["gpu_index"]) == (
        "p4d.24xlarge", "gpu-train-01", 0)  # fmt: skip
    assert (util["cloud_provider"], util["cloud_account"], util["cloud_region"]) == (
        "aws", "111122223333", "us-east-1")  # fmt: skip
    assert util["source_event"] == "gpu_util" and json.loads(util["raw"])["label"] == "normal"
    assert len({r["event_id"] for r in job}) == 3


def test_json_entity_without_job_null_skipped_and_summary_bytes(workloads: list[Row]):
    temp = _one(workloads, metric_name="gpu_temp")
    assert (temp["entity_id"], temp["metric_unit"]) == ("gpu-train-02/gpu3", "celsius")
    assert temp["time"].isoformat() == "2024-05-01T10:00:00+00:00"  # epoch seconds
    assert not [r for r in workloads if r["metric_name"] == "mem_util" and r["gpu_index"] == 3]
    bytes_in = _one(workloads, metric_name="bytes_in")
    assert (bytes_in["metric_value"], bytes_in["bytes_in"], bytes_in["metric_unit"]) == (
        51539607552.0, 51539607552, "bytes")  # fmt: skip
    assert bytes_in["time"].isoformat() == "2024-05-01T10:00:00+00:00"  # epoch milliseconds
    assert _one(workloads, metric_name="duration_s")["metric_unit"] == "seconds"
    assert _one(workloads, metric_name="bytes_out")["bytes_in"] is None


def test_json_long_form_row(workloads: list[Row]):
    tokens = _one(workloads, metric_name="tokens_per_s")
    assert (tokens["metric_value"], tokens["metric_unit"], tokens["entity_id"]) == (
        1830.5, "tokens/s", "gpu-train-03")  # fmt: skip


def test_json_bad_rows_rejected_with_line(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "metrics" / "workloads_bad.jsonl"], store)
    counts = report.by_format["metrics"]
    assert (counts.read, counts.stored, counts.rejected) == (9, 2, 7)
    reasons = {r.position.line: r.reason for r in report.rejected}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8}
    assert "$.gpu_index" in reasons[2]
    assert reasons[3] == "gpu_util: expected a number, got str 'high'"
    assert reasons[4].startswith("no metric in the row")
    assert "Expected `object`, got `array`" in reasons[5]
    assert reasons[6] == "unparseable time 'at noon'"
    assert "malformed JSON" in reasons[7]
    assert "missing required field `timestamp`" in reasons[8]
    assert sorted(r["metric_value"] for r in _events(store)) == [50.0, 51.0]


# -- identity, detection ---------------------------------------------------------------------


def test_event_id_is_row_plus_metric_name(workloads: list[Row]):
    util = _one(workloads, metric_name="gpu_util", job_id="ft-llama-7f3a")
    assert util["event_id"] == event_id("metrics", util["raw"].encode() + b"\0gpu_util")


def test_reingest_and_copies_add_nothing(fixtures: Path, tmp_path: Path, store: DuckDBStore):
    names = ("dcgm.prom", "nvidia-smi.csv", "nvidia-smi-nounits.csv", "workloads.jsonl")
    paths = [fixtures / "metrics" / name for name in names]
    for path in paths:
        (tmp_path / f"copy-{path.name}").write_bytes(path.read_bytes())
    first = ingest_paths(paths, store).total()
    again = ingest_paths([*paths, tmp_path], store).total()
    assert first.stored == 6 + 10 + 10 + 9 and first.duplicates == 0
    assert (again.stored, again.duplicates) == (0, 2 * first.stored)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("dcgm.prom", "prometheus"), ("dcgm_bad.prom", "prometheus"),
     ("nvidia-smi.csv", "nvidia-smi"), ("nvidia-smi-nounits.csv", "nvidia-smi"),
     ("nvidia-smi_bad.csv", "nvidia-smi"), ("workloads.jsonl", "json")],
)  # fmt: skip
def test_shapes_are_detected_and_sniffed_as_metrics(fixtures: Path, name: str, shape: str):
    source = _source(fixtures / "metrics" / name)
    assert detect_shape(source) == shape
    assert sniff(source) == "metrics"


def test_unrecognised_text_named_as_metrics_is_a_clear_error(tmp_path: Path, store: DuckDBStore):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    with pytest.raises(SourceError, match="not a metrics source"):
        ingest_paths([path], store, fmt="metrics")


@pytest.mark.parametrize("text", ["", "\n\n", "# HELP DCGM_FI_DEV_GPU_UTIL only comments\n"])
def test_empty_sources_give_nothing_and_no_error(tmp_path: Path, store: DuckDBStore, text: str):
    path = tmp_path / "empty.prom"
    path.write_text(text)
    assert ingest_paths([path], store, fmt="metrics").total().read == 0
