"""AWS actions through boto3 against moto's local AWS API server (no real AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kestrel.errors import ActionError
from kestrel.respond.actions.cloud import (
    DENY_POLICY_NAME,
    AttachDenyPolicy,
    DetachDenyPolicy,
    KeyParams,
    PrincipalParams,
    SetAccessKey,
    iam_client,
)


@pytest.fixture(scope="module")
def iam() -> Iterator[Any]:
    """One moto server for the module (starting it is most of the cost); each test uses
    its own user and role names."""
    moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(key, "testing")
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield iam_client(endpoint_url=f"http://{host}:{port}")
        finally:
            server.stop()


def test_disable_and_enable_access_key(iam: Any):
    iam.create_user(UserName="build-bot")
    key = iam.create_access_key(UserName="build-bot")["AccessKey"]["AccessKeyId"]
    params = KeyParams(user="build-bot", access_key_id=key)
    assert SetAccessKey(iam, "Inactive").run(params).ok
    [meta] = iam.list_access_keys(UserName="build-bot")["AccessKeyMetadata"]
    assert meta["Status"] == "Inactive"
    SetAccessKey(iam, "Active").run(params)
    assert iam.list_access_keys(UserName="build-bot")["AccessKeyMetadata"][0]["Status"] == "Active"


def test_attach_and_detach_deny_policy_for_user_and_role(iam: Any):
    iam.create_user(UserName="alice")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action":
             "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}}]}  # fmt: skip
    iam.create_role(RoleName="trainer", AssumeRolePolicyDocument=json.dumps(trust))
    AttachDenyPolicy(iam).run(PrincipalParams(name="alice"))
    AttachDenyPolicy(iam).run(PrincipalParams(name="trainer", kind="role"))
    doc = iam.get_user_policy(UserName="alice", PolicyName=DENY_POLICY_NAME)["PolicyDocument"]
    assert doc["Statement"][0]["Effect"] == "Deny"
    assert iam.list_role_policies(RoleName="trainer")["PolicyNames"] == [DENY_POLICY_NAME]
    DetachDenyPolicy(iam).run(PrincipalParams(name="alice"))
    assert iam.list_user_policies(UserName="alice")["PolicyNames"] == []


def test_aws_errors_become_action_errors(iam: Any):
    with pytest.raises(ActionError, match="NoSuchEntity"):
        AttachDenyPolicy(iam).run(PrincipalParams(name="nobody"))
