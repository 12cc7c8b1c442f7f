"""Callers from an Amazon Cognito identity pool: one shared role stands for every end user of an
app, so no grant admits them unless it says so (`allow_cognito`)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib.grants import GrantError, parse_grant
from tests.functional.conftest import DEPLOYER, JENKINS, Stack, iam_identity, jenkins_grant

POOL = "us-east-1:11111111-2222-3333-4444-555555555555"


def cognito_identity(**fields: Any) -> dict[str, Any]:
    return {
        **iam_identity(),
        "cognitoIdentityPoolId": POOL,
        "cognitoIdentityId": "us-east-1:66666666-7777-8888-9999-000000000000",
        "cognitoAuthenticationType": "unauthenticated",
        **fields,
    }


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "").startswith("credentials.")]


@pytest.mark.parametrize(
    "identity",
    [
        cognito_identity(),
        cognito_identity(cognitoIdentityPoolId=None, cognitoAuthenticationType=None),
        {**iam_identity(), "cognitoAuthenticationType": "authenticated"},
        iam_identity(arn="arn:aws:sts::111111111111:assumed-role/jenkins-agent/CognitoIdentityCredentials"),
    ],
    ids=["pool", "identity-id-only", "authentication-type", "enhanced-flow-session"],
)
def test_a_cognito_caller_is_refused_without_an_opted_in_grant(
    stack: Stack, caplog: pytest.LogCaptureFixture, identity: dict[str, Any]
) -> None:
    stack.put_grant(jenkins_grant())
    caplog.set_level(logging.INFO)

    answer = stack.vend({"role_arn": DEPLOYER}, identity)

    assert answer.status == 403, answer.body
    assert answer.body["Code"] == "CallerNotAllowed"
    assert "Cognito" in answer.body["Message"] and '"allow_cognito": true' in answer.body["Message"]
    assert "AccessKeyId" not in answer.body
    assert stack.sent == []
    (record,) = audit_records(caplog)
    assert record.__dict__["event"] == "credentials.denied"
    assert record.__dict__["code"] == "CallerNotAllowed"
    assert "Cognito" in record.__dict__["reason"]

    roles = stack.invoke("GET", "/roles", identity=identity)
    assert roles.status == 403
    assert roles.body["Code"] == "CallerNotAllowed"


def test_a_grant_that_opts_in_admits_cognito_callers_and_the_audit_names_the_pool(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.put_grant(jenkins_grant(allow_cognito=True))
    caplog.set_level(logging.INFO)

    answer = stack.vend({"role_arn": DEPLOYER}, cognito_identity())

    assert answer.status == 200, answer.body
    (record,) = audit_records(caplog)
    assert record.__dict__["event"] == "credentials.vended"
    assert record.__dict__["caller_cognito_identity_pool"] == POOL
    assert record.__dict__["caller_arn"] == JENKINS


def test_an_ordinary_caller_is_not_affected(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())
    assert stack.vend({"role_arn": DEPLOYER}).status == 200


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_allow_cognito_must_be_true_or_false(value: Any) -> None:
    raw = {"principal": "arn:aws:iam::111111111111:role/app", "roles": [{"role_arn": DEPLOYER}]}
    with pytest.raises(GrantError, match="allow_cognito"):
        parse_grant({**raw, "allow_cognito": value}, resolve_policy=lambda name: None)


def test_allow_cognito_is_stored_only_when_set() -> None:
    roles = [{"role_arn": DEPLOYER}]
    plain = parse_grant({"principal": "arn:aws:iam::111111111111:role/app", "roles": roles},
                        resolve_policy=lambda name: None)
    opted = parse_grant(
        {"principal": "arn:aws:iam::111111111111:role/app", "roles": roles, "allow_cognito": True},
        resolve_policy=lambda name: None,
    )
    assert "allow_cognito" not in plain.to_item()
    assert opted.to_item()["allow_cognito"] is True
    assert parse_grant(opted.to_item()).allow_cognito is True
