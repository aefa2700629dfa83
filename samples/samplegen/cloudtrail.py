"""CloudTrail: three principals' normal day and one stolen access key."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from samplegen import ACCOUNT, iso

CT_DAY = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
ALICE = {
    "type": "IAMUser",
    "principalId": "AIDAQX3EXAMPLE7ALICE",
    "userName": "alice",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
    "accountId": ACCOUNT,
    "accessKeyId": "AKIAQX3EXAMPLEALICE1",
}
BACKUP = {
    "type": "IAMUser",
    "principalId": "AIDAQX3EXAMPLEBACKUP",
    "userName": "svc-backup",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/svc-backup",
    "accountId": ACCOUNT,
    "accessKeyId": "AKIAQX3EXAMPLEBKUP01",
}
CI_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"
CI = {
    "type": "AssumedRole",
    "principalId": "AROAQX3EXAMPLECIROLE:github-actions",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/github-actions",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAQX3EXAMPLECI0001",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAQX3EXAMPLECIROLE",
            "arn": CI_ROLE,
            "accountId": ACCOUNT,
            "userName": "ci-deployer",
        },
        "attributes": {"creationDate": "2024-05-01T09:58:12Z", "mfaAuthenticated": "false"},
    },
}
CLI_UA = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-28-generic exe/x86_64.ubuntu.22 prompt/off"
BOTO_UA = "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.5.0 lang/python#3.11.9"
ATTACK_UA = "aws-cli/1.18.69 Python/3.8.10 Linux/5.4.0-1045-aws botocore/1.17.47"
ATTACKER_IP = "203.0.113.200"


class _Trail:
    """Makes CloudTrail records with seeded request and event ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.records: list[dict[str, Any]] = []

    def call(
        self,
        t: datetime,
        who: dict[str, Any],
        ip: str,
        ua: str,
        service: str,
        name: str,
        region: str = "us-east-1",
        params: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": who,
            "eventTime": iso(t),
            "eventSource": f"{service}.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
        }
        if error:
            record.update(errorCode=error[0], errorMessage=error[1])
        record.update(
            {
                "requestParameters": params,
                "responseElements": response,
                "requestID": self._uuid(),
                "eventID": self._uuid(),
                "readOnly": name.startswith(("Describe", "List", "Get")),
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": ACCOUNT,
                "eventCategory": "Management",
            }
        )
        self.records.append(record)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def cloudtrail_records(rng: random.Random) -> list[dict[str, Any]]:
    """About 200 records of 2024-05-01, time-ordered like a delivery file."""
    trail = _Trail(rng)
    _alice(trail)
    _ci(trail)
    _backup(trail)
    _attack(trail)
    return sorted(trail.records, key=lambda r: (r["eventTime"], r["eventID"]))


def _minutes(rng: random.Random, n: int, start: float, end: float) -> list[datetime]:
    """n times between start and end hours of the sample day, in order."""
    return sorted(
        CT_DAY.replace(hour=0) + timedelta(hours=rng.uniform(start, end)) for _ in range(n)
    )


def _alice(trail: _Trail) -> None:
    """A developer on the CLI during office hours, in us-east-1 and eu-west-1."""
    calls = (
        ("ec2", "DescribeInstances", {"maxResults": 50}),
        ("s3", "ListBuckets", None),
        ("ec2", "DescribeSecurityGroups", {"groupIds": ["sg-0a1b2c3d4e5f60718"]}),
        ("logs", "DescribeLogGroups", {"logGroupNamePrefix": "/aws/lambda/"}),
        ("lambda", "ListFunctions20150331", None),
        ("s3", "GetBucketPolicy", {"bucketName": "acme-app-assets"}),
        ("sts", "GetCallerIdentity", None),
    )
    for k, t in enumerate(_minutes(trail.rng, 72, 8.5, 17.5)):
        service, name, params = calls[trail.rng.randrange(len(calls))]
        region = "eu-west-1" if k % 5 == 4 and service != "s3" else "us-east-1"
        trail.call(
            t, ALICE, "198.51.100.10", CLI_UA + f" command/{service}", service, name, region, params
        )


def _ci(trail: _Trail) -> None:
    """The CI role deploying a container service several times a day."""
    for t in _minutes(trail.rng, 7, 10, 17):
        steps = (
            ("ecr", "GetAuthorizationToken", None),
            ("ecr", "PutImage", {"repositoryName": "acme/web", "imageTag": "main"}),
            ("ecs", "RegisterTaskDefinition", {"family": "acme-web"}),
            ("ecs", "UpdateService", {"cluster": "prod", "service": "acme-web"}),
            ("ecs", "DescribeServices", {"cluster": "prod", "services": ["acme-web"]}),
            ("cloudformation", "DescribeStacks", {"stackName": "acme-web"}),
        )
        for k, (service, name, params) in enumerate(steps):
            trail.call(
                t + timedelta(seconds=9 * k),
                CI,
                "192.0.2.44",
                BOTO_UA,
                service,
                name,
                params=params,
            )


def _backup(trail: _Trail) -> None:
    """The backup service snapshotting volumes every hour from its instance."""
    for hour in range(8, 18):
        t = CT_DAY.replace(hour=hour, minute=5)
        for k, vol in enumerate(
            ("vol-0a1b2c3d4e5f60001", "vol-0a1b2c3d4e5f60002", "vol-0a1b2c3d4e5f60003")
        ):
            trail.call(
                t + timedelta(seconds=4 * k),
                BACKUP,
                "192.0.2.10",
                BOTO_UA,
                "ec2",
                "CreateSnapshot",
                params={"volumeId": vol},
            )
        trail.call(
            t + timedelta(seconds=20),
            BACKUP,
            "192.0.2.10",
            BOTO_UA,
            "ec2",
            "DescribeSnapshots",
            params={"ownersSet": {"items": [{"owner": "self"}]}},
        )


REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
)


def _attack(trail: _Trail) -> None:
    """svc-backup's key used from an unknown address: whoami, discovery denied across eight
    regions, CloudTrail stopped, a key minted for alice, secrets pulled."""
    t = CT_DAY.replace(hour=14, minute=12, second=3)

    def call(dt: float, *args: Any, **kw: Any) -> None:
        trail.call(t + timedelta(seconds=dt), BACKUP, ATTACKER_IP, ATTACK_UA, *args, **kw)

    call(0, "sts", "GetCallerIdentity")
    call(17, "s3", "ListBuckets")
    for k, region in enumerate(REGIONS):
        for j, (service, name, code) in enumerate(
            (
                ("ec2", "DescribeInstances", "Client.UnauthorizedOperation"),
                ("ec2", "DescribeVpcs", "Client.UnauthorizedOperation"),
                ("rds", "DescribeDBInstances", "AccessDenied"),
            )
        ):
            message = f"User: {BACKUP['arn']} is not authorized to perform: {service}:{name}"
            call(40 + 11 * k + 3 * j, service, name, region, error=(code, message))
    call(160, "cloudtrail", "DescribeTrails", params={"includeShadowTrails": True})
    call(
        171,
        "cloudtrail",
        "StopLogging",
        params={"name": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/management-trail"},
    )
    call(230, "iam", "ListUsers")
    call(
        244,
        "iam",
        "CreateAccessKey",
        params={"userName": "alice"},
        response={
            "accessKey": {
                "accessKeyId": "AKIAQX3EXAMPLEALICE2",
                "status": "Active",
                "userName": "alice",
                "createDate": "May 1, 2024 2:16:07 PM",
            }
        },
    )
    call(300, "secretsmanager", "ListSecrets", params={"maxResults": 100})
    for k, secret in enumerate(
        (
            "prod/db/password",
            "prod/stripe/api-key",
            "prod/jwt-signing",
            "prod/sendgrid",
            "staging/db/password",
            "ci/github-token",
            "prod/redis",
            "prod/s3-uploader",
            "prod/datadog",
            "prod/slack-webhook",
            "prod/oauth-client",
            "prod/backup-gpg",
        )
    ):
        arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{secret}"
        call(312 + 2 * k, "secretsmanager", "GetSecretValue", params={"secretId": arn})
