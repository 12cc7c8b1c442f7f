"""Vending end to end: the credentials are the assumed role, the emulator enforces the role's
identity policy on them, and STS received exactly what docs/design.md section 4 says it carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from stsvend.local.stack import LocalStack, LocalState
from tests.e2e.conftest import ROOT, Api, aws

pytestmark = pytest.mark.e2e

READ_ONLY = "arn:aws:iam::111111111111:role/read-only"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
SAMPLE_APP = "arn:aws:iam::111111111111:user/sample-app"
JENKINS = "arn:aws:iam::111111111111:user/jenkins"


def minified(path: Path) -> str:
    return json.dumps(json.loads(path.read_text()), separators=(",", ":"))


def assume_role_call(stack: LocalStack, session_name: str) -> dict[str, str]:
    calls = [c for c in stack.emulator.recorded_calls("AssumeRole")
             if c.get("RoleSessionName") == session_name]
    assert len(calls) == 1, f"expected one AssumeRole for {session_name}, saw {len(calls)}"
    return calls[0]


def tags_of(call: dict[str, str]) -> dict[str, str]:
    tags = {}
    index = 1
    while f"Tags.member.{index}.Key" in call:
        tags[call[f"Tags.member.{index}.Key"]] = call[f"Tags.member.{index}.Value"]
        index += 1
    return tags


def members(call: dict[str, str], name: str) -> list[str]:
    return [v for k, v in sorted(call.items()) if k.startswith(f"{name}.member.")]


def test_vended_credentials_are_the_assumed_role(api: Api, state: LocalState) -> None:
    answer = api.credentials("sample-app", READ_ONLY)

    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.body["AccessKeyId"].startswith("ASIA")
    assert answer.body["SourceIdentity"] == "sample-app"
    identity = aws(state, "sts", answer.body).get_caller_identity()
    assert identity["Arn"] == answer.body["AssumedRoleArn"]
    assert identity["Arn"] == (
        f"arn:aws:sts::111111111111:assumed-role/read-only/{answer.body['RoleSessionName']}"
    )
    assert identity["Account"] == "111111111111"


def test_the_emulator_enforces_the_roles_identity_policy(api: Api, state: LocalState) -> None:
    answer = api.credentials("sample-app", READ_ONLY)
    ec2 = aws(state, "ec2", answer.body)

    listed = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert set(state.instances["111111111111"]) <= set(listed)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    with pytest.raises(ClientError) as denied:
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    assert denied.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation")


def test_cross_account_credentials_act_in_the_development_account(api: Api, state: LocalState) -> None:
    answer = api.credentials("jenkins", DEPLOYER, tags={"build-id": "81"})

    assert answer.status == 200, answer.body
    identity = aws(state, "sts", answer.body).get_caller_identity()
    assert identity["Account"] == "222222222222"
    ec2 = aws(state, "ec2", answer.body)
    listed = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert set(state.instances["222222222222"]) <= set(listed)
    assert not set(state.instances["111111111111"]) & set(listed)


def test_sts_received_source_identity_tags_session_policy_and_external_id(
    api: Api, stack: LocalStack
) -> None:
    answer = api.credentials(
        "jenkins", DEPLOYER, tags={"build-id": "1234", "job-name": "deploy-web"},
        session_name="deploy-1234", duration_seconds=900,
    )
    assert answer.status == 200, answer.body

    call = assume_role_call(stack, answer.body["RoleSessionName"])
    assert answer.body["RoleSessionName"] == "jenkins-deploy-1234"
    assert call["RoleArn"] == DEPLOYER
    assert call["SourceIdentity"] == "jenkins"
    assert call["DurationSeconds"] == "900"
    assert tags_of(call) == {
        "stsvend:caller": JENKINS,
        "stsvend:caller-account": "111111111111",
        "stsvend:request-id": answer.body["RequestId"],
        "build-id": "1234",
        "job-name": "deploy-web",
    }
    assert sorted(members(call, "TransitiveTagKeys")) == ["stsvend:caller", "stsvend:caller-account"]
    assert call["Policy"] == minified(ROOT / "policies" / "session" / "ec2-deploy.json")
    assert call["ExternalId"] == "stsvend-local"


def test_sts_received_the_read_only_session_policy_and_no_external_id(
    api: Api, stack: LocalStack
) -> None:
    answer = api.credentials("sample-app", READ_ONLY)
    assert answer.status == 200, answer.body

    call = assume_role_call(stack, answer.body["RoleSessionName"])
    assert call["SourceIdentity"] == "sample-app"
    assert tags_of(call)["stsvend:caller"] == SAMPLE_APP
    assert call["Policy"] == minified(ROOT / "policies" / "session" / "ec2-read-only.json")
    assert "ExternalId" not in call
    assert call["DurationSeconds"] == "3600"


def test_each_vend_writes_one_audit_line_with_the_access_key_and_no_secret(
    api: Api, state: LocalState
) -> None:
    answer = api.credentials("sample-app", READ_ONLY)
    assert answer.status == 200, answer.body

    lines = [json.loads(line) for line in Path(state.logs["api"]).read_text().splitlines()
             if answer.body["RequestId"] in line and line.startswith("{")]
    audit = [line for line in lines if line.get("event") == "credentials.vended"]
    assert len(audit) == 1
    assert audit[0]["access_key_id"] == answer.body["AccessKeyId"]
    assert audit[0]["caller_arn"] == SAMPLE_APP
    assert answer.body["SecretAccessKey"] not in json.dumps(lines)
    assert answer.body["SessionToken"] not in json.dumps(lines)
