"""CloudTrail records for lifecycle tests: a principal probing its permissions (ten of
twelve calls denied in five minutes), which the api_abuse detector reports as
``api.error_rate``. Two storms a few minutes apart are one finding once merged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

_BASE: dict[str, Any] = {
    "eventVersion": "1.08", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.10",
    "userAgent": "aws-cli/2.15.0", "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
    "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "111122223333",
                     "arn": "arn:aws:iam::111122223333:user/alice", "principalId": "AIDAALICE",
                     "accessKeyId": "AKIAALICE"},
}  # fmt: skip


def denied_storm(start: datetime) -> list[dict[str, Any]]:
    """Ten denied ListUsers then two allowed calls, 15 s apart, from ``start``."""
    out = []
    for i in range(12):
        at = start + timedelta(seconds=15 * i)
        name, source, extra = (
            ("ListUsers", "iam.amazonaws.com", {"errorCode": "AccessDenied"})
            if i < 10
            else ("GetCallerIdentity", "sts.amazonaws.com", {})
        )
        out.append({**_BASE, **extra, "eventName": name, "eventSource": source,
                    "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "eventID": f"storm-{at:%H%M%S}"})  # fmt: skip
    return out


def send(client: TestClient, headers: dict[str, str], records: list[dict[str, Any]]) -> None:
    """POST the records as JSON Lines to the intake route; they must all be stored."""
    body = "\n".join(json.dumps(r) for r in records)
    res = client.post("/api/v1/events?format=cloudtrail", content=body,
                      headers={**headers, "Content-Type": "application/x-ndjson"})  # fmt: skip
    assert res.status_code == 200, res.text
    assert res.json()["stored"] == len(records)


T9 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
