import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from kestrel.ingest import ingest_paths
from kestrel.ingest.archives import sources
from kestrel.ingest.sniff import sniff
from kestrel.store import DuckDBStore, EventFilter


def _rows(store: DuckDBStore) -> list[dict[str, Any]]:
    return store.events(EventFilter()).to_pylist()


def test_delivery_file_maps_fields(fixtures: Path, store: DuckDBStore):
    report = ingest_paths([fixtures / "cloudtrail" / "delivery.json"], store)
    assert report.total().stored == 3 and report.total().rejected == 0
    denied, login, stop = _rows(store)
    assert denied["class"] == "api_activity" and denied["cloud_service"] == "ec2"
    assert denied["entity_type"] == "principal"
    assert denied["entity_id"] == "arn:aws:iam::111122223333:role/ci-deployer"
    assert denied["cloud_principal"] == "arn:aws:sts::111122223333:assumed-role/ci-deployer/builder"
    assert denied["user_name"] == "builder" and denied["outcome"] == "failure"
    assert denied["cloud_error_code"] == "Client.UnauthorizedOperation"
    assert denied["cloud_resource"] == "i-0abc" and denied["cloud_region"] == "eu-west-1"
    assert (login["class"], login["activity"], login["outcome"]) == ("auth", "logon", "failure")
    assert stop["cloud_operation"] == "StopLogging" and stop["cloud_resource"] == "org-trail"
    assert stop["cloud_access_key"] == "AKIAEXAMPLE2" and stop["src_ip"] == "203.0.113.9"
    assert stop["time"].isoformat() == "2024-05-01T10:06:00.250000+00:00"
    assert json.loads(str(stop["raw"]))["eventID"].endswith("0003")


def test_same_record_in_any_container_is_one_event(
    fixtures: Path, tmp_path: Path, store: DuckDBStore
):
    records = json.loads((fixtures / "cloudtrail" / "delivery.json").read_text())["Records"]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(json.dumps(records, indent=4).encode()))
    report = ingest_paths([fixtures / "cloudtrail" / "delivery.json", tmp_path], store)
    total = report.total()
    assert (total.read, total.stored, total.duplicates) == (9, 3, 6)


def test_sniffed_in_every_container(fixtures: Path, tmp_path: Path):
    records = json.loads((fixtures / "cloudtrail" / "delivery.json").read_text())["Records"]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "b.json").write_text(json.dumps(records, indent=2))
    errors: dict[str, str] = {}
    for source in sources(tmp_path, errors):
        assert sniff(source) == "cloudtrail", source.name


@pytest.mark.datasets
def test_stratus_detonations_ingest_whole(datasets: Path, store: DuckDBStore):
    report = ingest_paths([datasets / "stratus_red_team" / "stratus_detonation_logs.zip"], store)
    counts = report.by_format["cloudtrail"]
    assert (counts.read, counts.stored, counts.duplicates, counts.rejected) == (310, 310, 0, 0)
    again = ingest_paths([datasets / "stratus_red_team"], store)
    assert again.total().stored == 0 and store.stats().total == 310


@pytest.mark.datasets
def test_otrf_aws_cloudtrail_ingests_whole(datasets: Path, store: DuckDBStore):
    path = datasets / "otrf_security_datasets" / "atomic" / "aws" / "collection"
    counts = ingest_paths([path], store).by_format["cloudtrail"]
    assert (counts.read, counts.stored, counts.rejected) == (103, 103, 0)


def test_record_without_event_source_is_kept(tmp_path: Path, store: DuckDBStore):
    """A record without ``eventSource`` (exports and fixtures drop it) or with
    ``requestParameters`` stored as JSON text is still an API call: kept, not rejected."""
    bare = {"eventName": "CreateUser", "eventTime": "2021-08-31T15:46:02Z",
            "responseElements": {"user": {"userName": "bob"}}}  # fmt: skip
    text_params = {"eventName": "CreateAccount", "eventTime": "2020-11-05T21:21:46Z",
                   "requestParameters": '{"accountName": "x"}'}  # fmt: skip
    path = tmp_path / "trail.jsonl"
    path.write_text(json.dumps(bare) + "\n" + json.dumps(text_params) + "\n")
    report = ingest_paths([path], store, "cloudtrail")
    assert (report.total().stored, report.total().rejected) == (2, 0)
    rows = _rows(store)
    assert [r["cloud_operation"] for r in rows] == ["CreateAccount", "CreateUser"]
    assert rows[0]["cloud_service"] is None and rows[0]["cloud_resource"] is None
