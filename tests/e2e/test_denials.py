"""Requests that must get the documented error and no credentials, and reach STS for nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stsvend.client.signing import GET_CALLER_IDENTITY_BODY, request_binding
from stsvend.local.stack import LocalStack, LocalState
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

READ_ONLY = "arn:aws:iam::111111111111:role/read-only"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
SECRETS = ("AccessKeyId", "SecretAccessKey", "SessionToken")


def assume_role_calls(stack: LocalStack) -> int:
    return len(stack.emulator.recorded_calls("AssumeRole"))


def assert_refused(answer: Any, status: int, code: str) -> None:
    assert (answer.status, answer.code) == (status, code), answer.body
    assert set(answer.body) == {"Code", "Message", "RequestId"}
    assert not set(SECRETS) & set(answer.body)


def test_a_caller_without_a_grant_is_not_allowed(api: Api, stack: LocalStack) -> None:
    before = assume_role_calls(stack)

    answer = api.credentials("admin", READ_ONLY)

    assert_refused(answer, 403, "CallerNotAllowed")
    assert assume_role_calls(stack) == before


def test_a_role_the_grant_does_not_list_is_not_granted(api: Api, stack: LocalStack) -> None:
    before = assume_role_calls(stack)

    answer = api.credentials("sample-app", DEPLOYER)

    assert_refused(answer, 403, "RoleNotGranted")
    assert assume_role_calls(stack) == before


def test_a_tag_the_grant_does_not_allow_is_refused(api: Api) -> None:
    answer = api.credentials("jenkins", DEPLOYER, tags={"cost-center": "42"})

    assert_refused(answer, 403, "TagNotAllowed")


def _swap_key(to: str):
    def tamper(proof: dict[str, Any]) -> None:
        auth = proof["headers"]["Authorization"]
        own = auth.split("Credential=")[1].split("/")[0]
        proof["headers"]["Authorization"] = auth.replace(own, to)

    return tamper


def _change_signature(proof: dict[str, Any]) -> None:
    auth = proof["headers"]["Authorization"]
    last = auth[-1]
    proof["headers"]["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")


def _shift_date(proof: dict[str, Any]) -> None:
    date = proof["headers"]["X-Amz-Date"]
    proof["headers"]["X-Amz-Date"] = date[:-3] + ("00Z" if date[-3:] != "00Z" else "01Z")


def _other_endpoint(proof: dict[str, Any]) -> None:
    proof["url"] = "https://sts.amazonaws.com/"


def _unsigned_server_id(proof: dict[str, Any]) -> None:
    auth = proof["headers"]["Authorization"]
    proof["headers"]["Authorization"] = auth.replace(";x-stsvend-server-id", "")


@pytest.mark.parametrize(
    "tamper",
    [_change_signature, _shift_date, _other_endpoint, _unsigned_server_id],
    ids=["signature", "signed-date", "sts-endpoint", "server-id-unsigned"],
)
def test_a_tampered_proof_is_not_authenticated(api: Api, stack: LocalStack, tamper) -> None:
    before = assume_role_calls(stack)

    answer = api.credentials("sample-app", READ_ONLY, tamper=tamper)

    assert_refused(answer, 401, "NotAuthenticated")
    assert assume_role_calls(stack) == before


def test_a_proof_claiming_another_callers_key_is_not_authenticated(
    api: Api, state: LocalState
) -> None:
    jenkins_key = state.identities["jenkins"].access_key_id
    answer = api.credentials("sample-app", DEPLOYER, tamper=_swap_key(jenkins_key))

    assert_refused(answer, 401, "NotAuthenticated")


def test_a_proof_for_another_server_id_is_not_authenticated(api: Api, stack: LocalStack) -> None:
    before = assume_role_calls(stack)

    answer = api.credentials("sample-app", READ_ONLY, server_id="https://stsvend.example/api")

    assert_refused(answer, 401, "NotAuthenticated")
    assert assume_role_calls(stack) == before


def test_a_request_without_a_proof_is_not_authenticated(api: Api) -> None:
    answer = api.call("POST", "/credentials", body={"role_arn": READ_ONLY})

    assert_refused(answer, 401, "NotAuthenticated")


def test_a_proof_for_whoami_replayed_on_credentials_is_not_authenticated(
    api: Api, stack: LocalStack
) -> None:
    before = assume_role_calls(stack)
    whoami_proof = api.proof("sample-app", "GET", "/whoami")
    assert api.call("GET", "/whoami", proof=whoami_proof).status == 200

    answer = api.credentials("sample-app", READ_ONLY, proof=whoami_proof)

    assert_refused(answer, 401, "NotAuthenticated")
    assert "another request" in answer.body["Message"]
    assert assume_role_calls(stack) == before


def test_a_zero_signature_proof_signing_x_amz_target_is_not_authenticated(
    api: Api, stack: LocalStack, state: LocalState
) -> None:
    """Only the victim's access key id, a zero signature, and an X-Amz-Target the emulator would
    answer without checking the signature."""
    victim = state.identities["jenkins"].access_key_id

    def forge(proof: dict[str, Any]) -> None:
        headers = proof["headers"]
        headers["X-Amz-Target"] = "AWSCognitoIdentityService.GetId"
        scope = headers["Authorization"].split("Credential=")[1].split(",")[0].split("/", 1)[1]
        signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={victim}/{scope}, "
            f"SignedHeaders={';'.join(sorted([*signed.split(';'), 'x-amz-target']))}, "
            f"Signature={'0' * 64}"
        )

    before = assume_role_calls(stack)
    answer = api.credentials("sample-app", DEPLOYER, tamper=forge, tags={"build-id": "1"})

    assert_refused(answer, 401, "NotAuthenticated")
    assert "x-amz-target" in answer.body["Message"]
    assert assume_role_calls(stack) == before


def _proof_with_content_type(api: Api, identity: str, content_type: str) -> str:
    """A genuine proof by `identity` for `GET /whoami`, whose signed Content-Type is `content-type`."""
    state = api.state
    me = state.identities[identity]
    url = state.emulator_url + "/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=GET_CALLER_IDENTITY_BODY.encode(),
        headers={
            "Content-Type": content_type,
            "X-Stsvend-Server-Id": api.server_id,
            "X-Stsvend-Request": request_binding("GET", "/whoami", b""),
        },
    )
    SigV4Auth(Credentials(me.access_key_id, me.secret_access_key), "sts", state.region).add_auth(request)
    headers = dict(request.headers.items())
    proof = {"method": "POST", "url": url, "headers": headers, "body": GET_CALLER_IDENTITY_BODY}
    return base64.b64encode(json.dumps(proof).encode()).decode()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-amz-json-1.1"])
def test_a_proof_signing_a_json_content_type_is_401_not_an_outage(api: Api, content_type: str) -> None:
    answer = api.call("GET", "/whoami", proof=_proof_with_content_type(api, "sample-app", content_type))
    assert answer.status == 401, answer.body
    assert answer.code == "NotAuthenticated"
    assert "Content-Type" in answer.body["Message"]
