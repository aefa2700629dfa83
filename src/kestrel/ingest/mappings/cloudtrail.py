"""CloudTrail: which request parameter names the resource, and who the principal is."""

from __future__ import annotations

# requestParameters keys that name the main resource of a call, most specific first.
RESOURCE_KEYS: tuple[str, ...] = (
    "bucketName", "instanceId", "snapshotId", "imageId", "trailName", "name", "userName",
    "roleName", "policyArn", "groupId", "secretId", "keyId", "functionName", "logGroupName",
    "dBInstanceIdentifier", "clusterName", "detectorId", "flowLogIds", "roleArn",
)  # fmt: skip

RESOURCE_RANK: dict[str, int] = {key: rank for rank, key in enumerate(RESOURCE_KEYS)}


def principal_arn(
    arn: str | None,
    kind: str | None,
    principal_id: str | None,
    invoked_by: str | None,
    account: str | None,
) -> str:
    """The id of the acting principal: its ARN; for AWS services the service name; as a last
    resort the principal id or the account, so no record lacks an entity."""
    if arn:
        return arn
    if kind == "AWSService" and invoked_by:
        return invoked_by
    if principal_id:
        return principal_id
    if account:
        return f"arn:aws:iam::{account}:unknown"
    return "unknown"
