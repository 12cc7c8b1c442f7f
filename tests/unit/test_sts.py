"""The STS edge: AssumeRole's failures become the service's errors, the cause kept; the answer is
the credential_process shape with the expiry in the one timestamp format."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.errors import AssumeRoleDenied, PolicyTooLarge, ServiceUnavailable, StsvendError
from chalicelib.grants import RoleGrant
from chalicelib.sts import assume_role
from chalicelib.vending import Plan

ROLE = RoleGrant("arn:aws:iam::222222222222:role/deployer", external_id="ext-1")
PLAN = Plan(ROLE, {"RoleArn": ROLE.role_arn, "RoleSessionName": "ci-1", "SourceIdentity": "ci"})


class Sts:
    def __init__(self, outcome: Exception | dict[str, Any]) -> None:
        self.outcome = outcome

    def assume_role(self, **params: Any) -> dict[str, Any]:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "AssumeRole",
    )


@pytest.mark.parametrize(
    ("failure", "expected", "words"),
    [
        (client_error("AccessDenied", 403), AssumeRoleDenied, "sts:ExternalId"),
        (client_error("RegionDisabledException", 403), AssumeRoleDenied, "not activated"),
        (client_error("PackedPolicyTooLarge", 400), PolicyTooLarge, "too large"),
        (client_error("Throttling", 400), ServiceUnavailable, "try again"),
        (client_error("SomethingNew", 503), ServiceUnavailable, "try again"),
        (client_error("ValidationError", 400), AssumeRoleDenied, "ValidationError"),
        (EndpointConnectionError(endpoint_url="https://sts.example"), ServiceUnavailable, "reached"),
    ],
)
def test_failures_are_translated_keeping_the_cause(
    failure: Exception, expected: type[StsvendError], words: str
) -> None:
    with pytest.raises(expected, match=words) as raised:
        assume_role(Sts(failure), PLAN)
    assert raised.value.__cause__ is failure


@pytest.mark.parametrize(
    ("caller", "hinted"),
    [("oidc:github:octo-main", True), ("arn:aws:iam::111111111111:role/ci", False), (None, False)],
)
def test_a_refused_oidc_vend_names_the_trust_pattern_it_needs(caller: str | None, hinted: bool) -> None:
    """An OIDC caller's session tag (oidc:<issuer>:<grant>) is not matched by the trust template's
    default `arn:*`: the denial says which pattern the role's owner must add (not the grant's name)."""
    tags = [{"Key": "stsvend:caller", "Value": caller}] if caller else []
    plan = Plan(ROLE, {**PLAN.params, "Tags": tags})
    with pytest.raises(AssumeRoleDenied) as raised:
        assume_role(Sts(client_error("AccessDenied", 403)), plan)
    message = str(raised.value)
    assert ("an oidc: pattern" in message and "--allowed-caller" in message) is hinted
    assert "octo-main" not in message


def test_the_answer_is_the_credential_process_shape() -> None:
    expires = datetime(2027, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    answer = assume_role(
        Sts(
            {
                "Credentials": {
                    "AccessKeyId": "ASIAX",
                    "SecretAccessKey": "s",
                    "SessionToken": "t",
                    "Expiration": expires,
                },
                "AssumedRoleUser": {"Arn": "arn:aws:sts::222222222222:assumed-role/deployer/ci-1"},
            }
        ),
        PLAN,
    )
    assert answer == {
        "Version": 1,
        "AccessKeyId": "ASIAX",
        "SecretAccessKey": "s",
        "SessionToken": "t",
        "Expiration": "2027-01-01T12:00:00Z",
        "AssumedRoleArn": "arn:aws:sts::222222222222:assumed-role/deployer/ci-1",
        "RoleSessionName": "ci-1",
        "SourceIdentity": "ci",
    }
