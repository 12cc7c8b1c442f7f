"""Cognito identity-pool callers in `sts-proof` mode: what the mode can tell and what it cannot.

STS's GetCallerIdentity answers only Arn, UserId and Account. A session of Cognito's enhanced flow is
always named `CognitoIdentityCredentials`, so it is told apart and refused unless its grant sets
`allow_cognito`; a basic-flow session names itself and is one more session of its role. Shown with
real role sessions of a moto server (IAM auth on) and the service's own verifier.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.credentials import Credentials

from tests.functional.conftest import moto_api
from tests.functional.test_sts_proof import ProofStack, binding_for, make_proof, proof_stack

__all__ = ["proof_stack"]  # the fixture, used by name below

ACCOUNT = "123456789012"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/app-users"
READ_ONLY_HERE = f"arn:aws:iam::{ACCOUNT}:role/read-only"
VEND = json.dumps({"role_arn": READ_ONLY_HERE})


def session_of_app_role(proof_stack: ProofStack, session_name: str, **grant: Any) -> tuple[Credentials, str]:
    """Credentials of a session of `app-users` named `session_name`, the role granted read-only with
    `grant`'s fields (made while IAM auth is off)."""
    url = proof_stack.stack.url
    moto_api(url, "/moto-api/reset-auth", b"1000000000")
    try:
        proof_stack.stack.put_grant({"principal": APP_ROLE, "roles": [{"role_arn": READ_ONLY_HERE}], **grant})
        keys: dict[str, Any] = {"aws_access_key_id": "AKIASETUPSETUPSETUP0", "aws_secret_access_key": "x"}
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=url, **keys)
        try:
            iam.create_role(
                RoleName="app-users",
                AssumeRolePolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                            }
                        ],
                    }
                ),
            )
        except iam.exceptions.EntityAlreadyExistsException:
            pass
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url=url, **keys)
        made = sts.assume_role(RoleArn=APP_ROLE, RoleSessionName=session_name)
    finally:
        moto_api(url, "/moto-api/reset-auth", b"0")
    c = made["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), made["AssumedRoleUser"][
        "Arn"
    ]


def vend_as(proof_stack: ProofStack, credentials: Credentials) -> Any:
    proof = make_proof(credentials, proof_stack.stack.url + "/", binding_for("/credentials", VEND))
    return proof_stack.call("/credentials", proof, VEND)


def test_an_enhanced_flow_session_is_told_apart_and_refused_without_allow_cognito(
    proof_stack: ProofStack,
) -> None:
    credentials, arn = session_of_app_role(proof_stack, "CognitoIdentityCredentials")
    assert arn.endswith(":assumed-role/app-users/CognitoIdentityCredentials")

    answer = vend_as(proof_stack, credentials)

    assert answer.status == 403, answer.body
    assert answer.body["Code"] == "CallerNotAllowed"
    assert '"allow_cognito": true' in answer.body["Message"]
    assert "AccessKeyId" not in answer.body


def test_an_enhanced_flow_session_is_admitted_when_the_grant_opts_in(proof_stack: ProofStack) -> None:
    credentials, _ = session_of_app_role(proof_stack, "CognitoIdentityCredentials", allow_cognito=True)

    answer = vend_as(proof_stack, credentials)

    assert answer.status == 200, answer.body
    assert answer.body["AssumedRoleArn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/read-only/")


def test_a_session_named_otherwise_is_one_more_session_of_its_role(proof_stack: ProofStack) -> None:
    # What a basic-flow caller looks like: GetCallerIdentity gives nothing else to tell it by, so
    # the grant for the role decides (docs/threat-model.md, section 2).
    credentials, arn = session_of_app_role(proof_stack, "chosen-by-the-caller")
    whoami = proof_stack.call(
        "/whoami", make_proof(credentials, proof_stack.stack.url + "/", binding_for("/whoami"))
    )
    assert whoami.status == 200, whoami.body
    assert set(whoami.body) >= {"Arn", "UserId", "Account"}
    assert whoami.body["Arn"] == arn

    answer = vend_as(proof_stack, credentials)

    assert answer.status == 200, answer.body
