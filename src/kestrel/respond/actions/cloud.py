"""AWS actions through boto3's IAM client: disable an access key, attach an explicit
deny-all inline policy to a user or role, and their undos.

Why an inline deny-all: an explicit Deny wins over every Allow, it takes effect on the
principal's next request, and removing the one named policy undoes it exactly. The IAM
client is injected (`iam_client` builds the real one, with ``endpoint_url`` for a local AWS
API emulator in tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from kestrel.errors import ActionError
from kestrel.respond.actions.base import ActionResult, ActionSpec, Params

DENY_POLICY_NAME = "kestrel-deny-all"
DENY_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "KestrelDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}


class KeyParams(Params):
    user: str = Field(min_length=1, description="The IAM user owning the key.")
    access_key_id: str = Field(pattern=r"^[A-Z0-9]{16,128}$")


class PrincipalParams(Params):
    name: str = Field(min_length=1, description="The IAM user or role name.")
    kind: Literal["user", "role"] = "user"


DISABLE_KEY = ActionSpec("disable_access_key", "cloud", "user", KeyParams,
                         "Set an IAM access key Inactive.", undo="enable_access_key")  # fmt: skip
ENABLE_KEY = ActionSpec("enable_access_key", "cloud", "user", KeyParams,
                        "Set an IAM access key Active again.")  # fmt: skip
DENY = ActionSpec("attach_deny_policy", "cloud", "name", PrincipalParams,
                  "Attach an inline deny-all policy to a user or role.",
                  undo="detach_deny_policy")  # fmt: skip
UNDENY = ActionSpec("detach_deny_policy", "cloud", "name", PrincipalParams,
                    "Remove Kestrel's deny-all policy.")  # fmt: skip
SPECS = (DISABLE_KEY, ENABLE_KEY, DENY, UNDENY)


def iam_client(endpoint_url: str | None = None, region: str = "us-east-1") -> Any:
    """A boto3 IAM client; credentials come from the usual AWS chain."""
    import boto3  # lazily: the agent and the CLI start without it

    return boto3.client("iam", endpoint_url=endpoint_url, region_name=region)


def _call(what: str, fn: Any, **kwargs: Any) -> Any:
    """One IAM call; an AWS error becomes `ActionError` with AWS's code and message."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise ActionError(f"{what}: {err.get('Code')}: {err.get('Message')}") from exc
    except BotoCoreError as exc:
        raise ActionError(f"{what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SetAccessKey:
    """Sets an access key's status: ``Inactive`` (disable) or ``Active`` (enable)."""

    iam: Any
    status: Literal["Active", "Inactive"] = "Inactive"

    @property
    def spec(self) -> ActionSpec:
        return DISABLE_KEY if self.status == "Inactive" else ENABLE_KEY

    def run(self, params: KeyParams) -> ActionResult:
        _call(self.spec.name, self.iam.update_access_key, UserName=params.user,
              AccessKeyId=params.access_key_id, Status=self.status)  # fmt: skip
        return ActionResult(True, f"access key {params.access_key_id} of {params.user} is "
                            f"{self.status}", {"access_key_id": params.access_key_id})  # fmt: skip


@dataclass(frozen=True, slots=True)
class AttachDenyPolicy:
    """Puts Kestrel's deny-all inline policy on a user or role."""

    iam: Any
    spec: ClassVar[ActionSpec] = DENY

    def run(self, params: PrincipalParams) -> ActionResult:
        put = self.iam.put_user_policy if params.kind == "user" else self.iam.put_role_policy
        key = "UserName" if params.kind == "user" else "RoleName"
        _call(self.spec.name, put, **{key: params.name}, PolicyName=DENY_POLICY_NAME,
              PolicyDocument=json.dumps(DENY_ALL))  # fmt: skip
        return ActionResult(True, f"{params.kind} {params.name} denied everything",
                            {"policy": DENY_POLICY_NAME})  # fmt: skip


@dataclass(frozen=True, slots=True)
class DetachDenyPolicy:
    """Deletes Kestrel's deny-all inline policy from a user or role."""

    iam: Any
    spec: ClassVar[ActionSpec] = UNDENY

    def run(self, params: PrincipalParams) -> ActionResult:
        rm = self.iam.delete_user_policy if params.kind == "user" else self.iam.delete_role_policy
        key = "UserName" if params.kind == "user" else "RoleName"
        _call(self.spec.name, rm, **{key: params.name}, PolicyName=DENY_POLICY_NAME)
        return ActionResult(True, f"{params.kind} {params.name} no longer denied")
