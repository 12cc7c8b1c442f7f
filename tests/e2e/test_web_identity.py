"""The identity-provider mode on the local stack: a 12-hour session vended through
AssumeRoleWithWebIdentity with a token the API signs with the emulator's KMS key, and the guard
checking web identity tokens as STS does, so that its refusals mean something: another audience,
another sub, an expired token, a token re-signed or altered, or one from anyone but the issuer key.

Tokens for the refusals are made here the way the service makes them (chalicelib.jose around
kms:Sign with the issuer key, as the stack's admin may), then changed one thing at a time; the
unchanged token is accepted, so each refusal is the change's."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from chalicelib.jose import b64url, b64url_decode, compact
from stsvend.local.seed import LONG_RUNNING_ROLE
from stsvend.local.stack import LocalState
from tests.e2e.conftest import Api, aws, own_keys

pytestmark = pytest.mark.e2e

SAMPLE_APP = "arn:aws:iam::111111111111:user/sample-app"
JENKINS = "arn:aws:iam::111111111111:user/jenkins"
TWELVE_HOURS = 43200


def _admin(state: LocalState, service: str) -> Any:
    return aws(state, service, own_keys(state, "admin"))


def _jwks(state: LocalState) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(state.api_url + "/.well-known/jwks.json", timeout=10) as response:
        return dict(json.loads(response.read()))


def _claims(state: LocalState, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": state.issuer_url,
        "aud": "stsvend",
        "sub": f"{LONG_RUNNING_ROLE}|{SAMPLE_APP}",
        "iat": now,
        "exp": now + 300,
        "jti": "test",
        "https://aws.amazon.com/tags": {
            "principal_tags": {"stsvend:caller": [SAMPLE_APP]},
            "transitive_tag_keys": ["stsvend:caller"],
        },
        "https://aws.amazon.com/source_identity": "sample-app",
    }
    claims.update(changes)
    return claims


def _kms_token(state: LocalState, claims: dict[str, Any], kid: str | None = None) -> str:
    """A token signed with the issuer's KMS key, as the service signs one."""
    kid = kid or _jwks(state)["keys"][0]["kid"]
    signing_input = compact({"alg": "RS256", "typ": "JWT", "kid": kid}, claims)
    signature = _admin(state, "kms").sign(
        KeyId=state.issuer_keys[0],
        Message=signing_input,
        MessageType="RAW",
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )["Signature"]
    return f"{signing_input.decode()}.{b64url(signature)}"


def _exchange(state: LocalState, token: str, duration: int = 900, sts: Any = None) -> dict[str, Any]:
    sts = sts or boto3.client(
        "sts",
        region_name=state.region,
        endpoint_url=state.emulator_url,
        config=Config(signature_version=UNSIGNED),
    )
    return dict(
        sts.assume_role_with_web_identity(
            RoleArn=LONG_RUNNING_ROLE,
            RoleSessionName="test-session",
            WebIdentityToken=token,
            DurationSeconds=duration,
        )
    )


def _refused(state: LocalState, token: str, code: str, duration: int = 900) -> None:
    with pytest.raises(ClientError) as caught:
        _exchange(state, token, duration)
    assert caught.value.response["Error"]["Code"] == code, caught.value.response["Error"]


def test_a_twelve_hour_session_is_vended_in_web_identity_mode(api: Api, state: LocalState) -> None:
    before = datetime.now(timezone.utc)
    answer = api.credentials("sample-app", LONG_RUNNING_ROLE, duration_seconds=TWELVE_HOURS)
    assert answer.status == 200, answer.body
    expires = datetime.strptime(answer.body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 43100 < (expires - before).total_seconds() <= TWELVE_HOURS + 5
    assert answer.body["AssumedRoleArn"].startswith("arn:aws:sts::111111111111:assumed-role/long-running/")
    assert answer.body["SourceIdentity"] == "sample-app"
    identity = aws(state, "sts", answer.body).get_caller_identity()
    assert identity["Arn"] == answer.body["AssumedRoleArn"]
    aws(state, "ec2", answer.body).describe_instances()  # the role's own permissions work
    # The same caller's chained role stays capped at an hour.
    chained = api.credentials("sample-app", "arn:aws:iam::111111111111:role/read-only", duration_seconds=7200)
    assert chained.status == 400 and chained.code == "DurationNotAllowed"


def test_the_issuer_documents_are_public(state: LocalState) -> None:
    keys = _jwks(state)["keys"]
    assert [k["alg"] for k in keys] == ["RS256"] and all("d" not in k for k in keys)


def test_a_token_made_as_the_service_makes_it_is_accepted(state: LocalState) -> None:
    answer = _exchange(state, _kms_token(state, _claims(state)), TWELVE_HOURS)
    assert answer["SubjectFromWebIdentityToken"] == f"{LONG_RUNNING_ROLE}|{SAMPLE_APP}"
    assert answer["Audience"] == "stsvend" and answer["SourceIdentity"] == "sample-app"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"aud": "someone-else"}, "InvalidIdentityToken"),
        ({"sub": f"{LONG_RUNNING_ROLE}|{JENKINS}"}, "AccessDenied"),
        ({"sub": f"arn:aws:iam::111111111111:role/read-only|{SAMPLE_APP}"}, "AccessDenied"),
        ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, "ExpiredTokenException"),
        ({"iss": "http://127.0.0.1:9/elsewhere"}, "InvalidIdentityToken"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3900}, "InvalidIdentityToken"),
    ],
    ids=["another-audience", "another-grant-sub", "another-role-sub", "expired", "another-issuer", "future"],
)
def test_a_token_for_another_decision_is_refused(
    state: LocalState, changes: dict[str, Any], code: str
) -> None:
    _refused(state, _kms_token(state, _claims(state, **changes)), code)


def test_a_duration_over_the_roles_maximum_is_refused(state: LocalState) -> None:
    _refused(state, _kms_token(state, _claims(state)), "ValidationError", TWELVE_HOURS + 1)


def test_an_altered_or_re_signed_token_is_refused(state: LocalState) -> None:
    good = _kms_token(state, _claims(state))
    header, _, signature = good.split(".")
    # The claims changed after signing (a broader sub), the signature kept.
    altered = b64url(json.dumps(_claims(state, sub=f"{LONG_RUNNING_ROLE}|*")).encode())
    _refused(state, f"{header}.{altered}.{signature}", "InvalidIdentityToken")
    # Re-signed with a key of one's own under the issuer's kid: what anyone without the KMS key can do.
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = json.loads(b64url_decode(header))["kid"]
    signing_input = compact({"alg": "RS256", "typ": "JWT", "kid": kid}, _claims(state))
    forged = own.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    _refused(state, f"{signing_input.decode()}.{b64url(forged)}", "InvalidIdentityToken")
    # Unsigned, or signed with a symmetric algorithm.
    for alg in ("none", "HS256"):
        unsigned = compact({"alg": alg, "typ": "JWT", "kid": kid}, _claims(state)).decode()
        _refused(state, f"{unsigned}.", "InvalidIdentityToken")


def test_another_kms_key_of_the_account_is_not_the_issuers(state: LocalState) -> None:
    kms = _admin(state, "kms")
    other = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    kid = _jwks(state)["keys"][0]["kid"]
    signing_input = compact({"alg": "RS256", "typ": "JWT", "kid": kid}, _claims(state))
    signature = kms.sign(
        KeyId=other, Message=signing_input, MessageType="RAW", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )["Signature"]
    _refused(state, f"{signing_input.decode()}.{b64url(signature)}", "InvalidIdentityToken")


def test_the_services_own_keys_get_no_session_without_a_token_of_the_issuer(state: LocalState) -> None:
    """The function's role may call STS signed, but a signed AssumeRoleWithWebIdentity is checked
    like any other: its signature buys nothing, the token decides."""
    service_sts = aws(state, "sts", own_keys(state, "service"))
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = compact({"alg": "RS256", "typ": "JWT", "kid": "mine"}, _claims(state))
    token = f"{signing_input.decode()}.{b64url(own.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))}"
    with pytest.raises(ClientError) as caught:
        _exchange(state, token, sts=service_sts)
    assert caught.value.response["Error"]["Code"] == "InvalidIdentityToken"
    with pytest.raises(ClientError) as saml:
        service_sts.assume_role_with_saml(
            RoleArn=LONG_RUNNING_ROLE,
            PrincipalArn="arn:aws:iam::222222222222:saml-provider/x",
            SAMLAssertion="PHNhbWw+PC9zYW1sPg==",
        )
    assert saml.value.response["Error"]["Code"] == "InvalidAction"


def test_without_kms_sign_the_service_vends_nothing_in_this_mode(api: Api, state: LocalState) -> None:
    iam = _admin(state, "iam")
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:Sign", "Resource": "*"}]}
    iam.put_user_policy(UserName="stsvend-service", PolicyName="no-signing", PolicyDocument=json.dumps(deny))
    try:
        answer = api.credentials("sample-app", LONG_RUNNING_ROLE)
        assert answer.status == 502 and answer.code == "AssumeRoleDenied", answer.body
        assert "KMS" in answer.body["Message"]
        # AssumeRole mode does not need the key.
        assert api.credentials("sample-app", "arn:aws:iam::111111111111:role/read-only").status == 200
    finally:
        iam.delete_user_policy(UserName="stsvend-service", PolicyName="no-signing")
    assert api.credentials("sample-app", LONG_RUNNING_ROLE).status == 200
