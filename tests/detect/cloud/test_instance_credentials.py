"""`InstanceCredentialDetector` on the real OTRF replay and on the edges the YAML cases do not
reach (history that has expired, batch order, ids against MITRE)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from kestrel.detect.cloud.instance_credentials import TECHNIQUES, InstanceCredentialDetector
from kestrel.eval.cloud import evaluate
from kestrel.eval.datasets import load
from kestrel.events import Batch
from kestrel.ingest import READERS
from kestrel.ingest.base import Source

ACCOUNT = "111122223333"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/WebRole/i-0317f6c6b66ae9c40"


def _only_ic() -> dict[str, Any]:
    return {"instance_credentials": InstanceCredentialDetector()}


def test_otrf_flags_the_instance_session_calls_only(datasets: Path) -> None:
    result = evaluate("otrf", load("otrf", datasets), _only_ic).as_dict()
    # 11 calls of the instance session i-0317f6c6b66ae9c40 from the console user's address;
    # the console user's own 92 calls are not the instance's credentials and stay unflagged
    assert result["event"]["tp"] == 11
    assert result["event"]["fp"] == 0
    assert result["technique"]["detected"] == 1


def _record(when: str, ident: dict[str, Any], ip: str, op: str = "ListBuckets") -> bytes:
    rec = {"eventVersion": "1.08", "eventTime": when, "eventName": op,
           "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1", "sourceIPAddress": ip,
           "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0", "userIdentity": ident,
           "eventID": f"{when}-{op}", "eventType": "AwsApiCall",
           "recipientAccountId": ACCOUNT}  # fmt: skip
    return json.dumps(rec).encode()


def _batch(*records: bytes) -> Batch:
    data = b"\n".join(records)
    src = Source("t", lambda: io.BytesIO(data), len(data))
    return pa.concat_tables([c.batch for c in READERS["cloudtrail"]().read(src)])


_ROOT = {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}
_INSTANCE = {"type": "AssumedRole", "arn": SESSION, "accountId": ACCOUNT,
             "principalId": "AROAWEB:i-0317f6c6b66ae9c40"}  # fmt: skip


def test_a_human_address_is_forgotten_after_ip_memory_hours() -> None:
    det = InstanceCredentialDetector(ip_memory_hours=24)
    assert det.detect(_batch(_record("2024-05-01T08:00:00Z", _ROOT, "203.0.113.7"))) == []
    late = det.clone()
    late.load_state(det.state())
    # two days later the address may belong to someone else: no finding
    assert late.detect(_batch(_record("2024-05-03T09:00:00Z", _INSTANCE, "203.0.113.7"))) == []
    # within the memory it is the strong signal
    found = det.detect(_batch(_record("2024-05-01T20:00:00Z", _INSTANCE, "203.0.113.7")))
    assert [s.name for f in found for s in f.signals] == ["instance_creds.human_source"]
    assert found[0].entity.id == SESSION


def test_human_later_in_the_same_batch_counts() -> None:
    batch = _batch(_record("2024-05-01T08:00:00Z", _INSTANCE, "203.0.113.7", "GetObject"),
                   _record("2024-05-01T08:30:00Z", _ROOT, "203.0.113.7"))  # fmt: skip
    found = InstanceCredentialDetector().detect(batch)
    assert len(found) == 1
    assert set(found[0].techniques) == set(TECHNIQUES)  # GetObject: T1530 as well
    assert len(found[0].evidence) == 1  # the root user's call is context, not evidence


def test_emitted_ids_exist_in_shared_mitre(datasets: Path) -> None:
    path = datasets / "mitre" / "enterprise_attack_v18.1_techniques.csv"
    with path.open(encoding="utf-8") as f:
        known = {r["technique_id"] for r in csv.DictReader(f) if r["revoked"] != "True"}
    assert set(TECHNIQUES) <= known
