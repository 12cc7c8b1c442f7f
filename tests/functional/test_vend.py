"""A granted caller gets working credentials, and STS is asked for exactly what docs/design.md §4 lists."""

from __future__ import annotations

import json
import re

import boto3

from tests.functional.conftest import (
    DEPLOYER,
    JENKINS,
    READ_ONLY,
    SESSION_POLICY,
    Stack,
    iam_identity,
    jenkins_grant,
)


def test_granted_caller_gets_working_credentials(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())

    answer = stack.vend(
        {
            "role_arn": DEPLOYER,
            "duration_seconds": 900,
            "tags": {"build-id": "1234"},
            "session_name": "deploy-1234",
        }
    )

    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.body
    assert body["Version"] == 1
    assert body["AccessKeyId"].startswith("ASIA")
    assert body["Expiration"].endswith("Z")
    assert body["AssumedRoleArn"].startswith("arn:aws:sts::222222222222:assumed-role/deployer/")
    assert body["RoleSessionName"] == "jenkins-agent-deploy-1234"
    assert body["SourceIdentity"] == "jenkins-agent"
    assert body["RequestId"]
    vended = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=stack.url,
        aws_access_key_id=body["AccessKeyId"],
        aws_secret_access_key=body["SecretAccessKey"],
        aws_session_token=body["SessionToken"],
    )
    assert vended.get_caller_identity()["Arn"] == body["AssumedRoleArn"]


def test_assume_role_carries_identity_tags_policy_and_external_id(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())

    answer = stack.vend(
        {
            "role_arn": DEPLOYER,
            "duration_seconds": 1200,
            "tags": {"Build-Id": "77", "job-name": "api/main"},
        }
    )

    assert answer.status == 200, answer.body
    (sent,) = stack.sent
    request_id = answer.body["RequestId"]
    assert sent["RoleArn"] == DEPLOYER
    # No session name asked for: the caller's own session name is the suffix.
    assert sent["RoleSessionName"] == "jenkins-agent-i-0abc123"
    assert sent["SourceIdentity"] == "jenkins-agent"
    assert sent["DurationSeconds"] == 1200
    assert sent["ExternalId"] == "stsvend-dev"
    assert json.loads(sent["Policy"]) == SESSION_POLICY
    assert sent["PolicyArns"] == [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    assert {t["Key"]: t["Value"] for t in sent["Tags"]} == {
        "stsvend:caller": "arn:aws:iam::111111111111:role/jenkins-agent",
        "stsvend:caller-account": "111111111111",
        "stsvend:request-id": request_id,
        "build-id": "77",  # the grant's spelling of a case-insensitive key
        "job-name": "api/main",
    }
    assert sent["TransitiveTagKeys"] == ["stsvend:caller", "stsvend:caller-account"]


def test_duration_defaults_to_the_grant_maximum_and_optional_parts_are_omitted(
    stack: Stack,
) -> None:
    stack.put_grant(jenkins_grant())

    answer = stack.vend({"role_arn": READ_ONLY})

    assert answer.status == 200, answer.body
    (sent,) = stack.sent
    assert sent["DurationSeconds"] == 1800
    assert "Policy" not in sent and "PolicyArns" not in sent and "ExternalId" not in sent


def test_roles_lists_what_the_caller_may_request(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())

    answer = stack.invoke("GET", "/roles", identity=iam_identity())

    assert answer.status == 200
    assert [r["RoleArn"] for r in answer.body["Roles"]] == [DEPLOYER, READ_ONLY]
    assert answer.body["Roles"][0]["MaxDurationSeconds"] == 3600
    assert answer.body["RequestTags"] == ["build-id", "job-name"]
    assert stack.sent == []


def test_whoami_reports_the_normalized_caller(stack: Stack) -> None:
    answer = stack.invoke("GET", "/whoami", identity=iam_identity())

    assert answer.status == 200
    assert answer.body["Arn"] == JENKINS
    assert answer.body["PrincipalArn"] == "arn:aws:iam::111111111111:role/jenkins-agent"
    assert answer.body["Account"] == "111111111111"
    assert answer.body["SessionName"] == "i-0abc123"
    assert answer.body["IdentityMode"] == "apigateway"


def test_grants_are_read_once_per_account_per_cache_period(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())
    queries: list[str] = []
    stack.clients.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.Query",
        lambda params, **_: queries.append(params["ExpressionAttributeValues"][":a"]["S"]),
    )

    for _ in range(5):
        assert stack.vend({"role_arn": READ_ONLY}).status == 200
    assert stack.invoke("GET", "/roles", identity=iam_identity()).status == 200

    assert queries == ["111111111111"]


def test_a_caller_whose_name_holds_a_comma_is_tagged_within_sts_charset(stack: Stack) -> None:
    # IAM allows `,` in names; STS refuses it in tag values. What the service sends STS is escaped.
    principal = "arn:aws:iam::111111111111:role/ci,build=1"
    stack.put_grant(jenkins_grant(principal=principal))
    identity = iam_identity(
        "arn:aws:sts::111111111111:assumed-role/ci,build=1/job,7", "AROACOMMA00000000001:job,7"
    )

    answer = stack.vend({"role_arn": READ_ONLY}, identity)

    assert answer.status == 200, answer.body
    (sent,) = stack.sent
    tags = {t["Key"]: t["Value"] for t in sent["Tags"]}
    assert tags["stsvend:caller"] == "arn:aws:iam::111111111111:role/ci=2Cbuild=3D1"
    assert all(re.fullmatch(r"[A-Za-z0-9 _.:/=+\-@]{0,256}", v) for v in tags.values())
    assert sent["SourceIdentity"] == "ci,build=1"
    assert re.fullmatch(r"[A-Za-z0-9_+=,.@-]{2,64}", sent["RoleSessionName"])
