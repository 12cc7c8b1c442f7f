"""The local emulator answers only correctly signed requests by keys it holds, whatever moto would
let through: made-up keys, real key ids with a zero signature (with and without moto's "public
operation" header), altered bodies and calls to its control API are refused with AWS-style 403s."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from stsvend.local.seed import READ_ONLY_ROLE
from stsvend.local.stack import LocalStack, LocalState
from tests.conftest import record_vended

PUBLIC_OPERATION = "AWSCognitoIdentityService.GetId"
MADE_UP = ("AKIAMADEUPMADEUP0001", "made-up-secret-made-up-secret-made-up-0")

# service -> (a call that needs authentication, the error code AWS answers for an unknown key, for a
# signature that does not match)
CALLS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "sts": (
        lambda c: c.assume_role(RoleArn=READ_ONLY_ROLE, RoleSessionName="forged"),
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ),
    "iam": (lambda c: c.list_users(), "InvalidClientTokenId", "SignatureDoesNotMatch"),
    "ec2": (lambda c: c.describe_instances(), "AuthFailure", "AuthFailure"),
    "dynamodb": (lambda c: c.list_tables(), "UnrecognizedClientException", "InvalidSignatureException"),
}


def client(state: LocalState, service: str, key: tuple[str, str], *, public_header: bool, zero: bool) -> Any:
    made = botocore.session.Session().create_client(
        service,
        region_name=state.region,
        endpoint_url=state.emulator_url,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}),
    )

    def add_header(request: Any, **_: Any) -> None:
        request.headers["X-Amz-Target"] = PUBLIC_OPERATION

    def zero_signature(request: Any, **_: Any) -> None:
        authorization = request.headers["Authorization"]
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        request.headers["Authorization"] = re.sub(
            r"Signature=[0-9a-f]+", "Signature=" + "0" * 64, authorization
        )

    if public_header:
        made.meta.events.register("before-sign", add_header)
    if zero:
        made.meta.events.register("before-send", zero_signature)
    return made


def refused(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("public_header", [True, False], ids=["public-operation-header", "plain"])
def test_a_made_up_key_is_refused(state: LocalState, service: str, public_header: bool) -> None:
    call, unknown, _ = CALLS[service]
    for zero in (True, False):
        forged = client(state, service, MADE_UP, public_header=public_header, zero=zero)
        assert refused(lambda: call(forged)) == (403, unknown)


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("public_header", [True, False], ids=["public-operation-header", "plain"])
def test_a_real_key_id_with_a_zero_signature_is_refused(
    state: LocalState, service: str, public_header: bool
) -> None:
    call, _, mismatch = CALLS[service]
    for name in ("admin", "service"):
        me = state.identities[name]
        # Only the key id is real: the attacker does not know the secret.
        forged = client(state, service, (me.access_key_id, "x" * 40), public_header=public_header, zero=True)
        assert refused(lambda: call(forged)) == (403, mismatch)


@pytest.mark.parametrize("service", sorted(CALLS))
def test_correctly_signed_requests_of_the_stacks_identities_are_answered(
    state: LocalState, service: str
) -> None:
    # The service identity may assume read-only; the admin may do everything else.
    me = state.identities["service" if service == "sts" else "admin"]
    call, _, _ = CALLS[service]
    answer = call(
        client(state, service, (me.access_key_id, me.secret_access_key), public_header=False, zero=False)
    )
    record_vended(answer.get("Credentials", {}))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_body_altered_after_signing_is_refused(state: LocalState) -> None:
    admin = state.identities["admin"]
    iam = client(
        state, "iam", (admin.access_key_id, admin.secret_access_key), public_header=False, zero=False
    )

    def alter(request: Any, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        request.body = body.replace(b"ListUsers", b"ListRoles")

    iam.meta.events.register("before-send", alter)
    assert refused(iam.list_users) == (403, "SignatureDoesNotMatch")


def test_a_presigned_request_with_a_wrong_signature_is_refused(state: LocalState) -> None:
    # (moto itself cannot answer presigned calls with IAM on; the guard's acceptance of a correct
    # one is shown in tests/unit/test_guard.py.)
    admin = state.identities["admin"]
    sts = client(
        state, "sts", (admin.access_key_id, admin.secret_access_key), public_header=False, zero=False
    )
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
    tampered = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(tampered, timeout=10)  # noqa: S310 - loopback emulator
    assert raised.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in raised.value.read()


@pytest.mark.parametrize(
    "path", ["/moto-api/reset-auth", "/moto-api/reset", "/moto-api/recorder/download-recording"]
)
@pytest.mark.parametrize("secret", [None, "not-the-emulators-secret-not-the-emulators"])
def test_the_control_api_needs_the_emulators_secret(stack: LocalStack, path: str, secret: str | None) -> None:
    headers = {"Content-Type": "text/plain"}
    if secret is not None:
        headers["X-Stsvend-Emulator-Control"] = secret
    request = urllib.request.Request(  # noqa: S310 - loopback emulator
        stack.state.emulator_url + path, data=b"inf", method="POST", headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert raised.value.code == 403
    # Enforcement is still on, and the grants table still there.
    forged = client(stack.state, "iam", MADE_UP, public_header=True, zero=True)
    assert refused(forged.list_users) == (403, "InvalidClientTokenId")
    admin = stack.state.identities["admin"]
    ddb = client(
        stack.state,
        "dynamodb",
        (admin.access_key_id, admin.secret_access_key),
        public_header=False,
        zero=False,
    )
    assert stack.state.grants_table in ddb.list_tables()["TableNames"]


def test_the_bootstrap_key_no_longer_works_once_iam_is_enforced(stack: LocalStack) -> None:
    iam = client(stack.state, "iam", stack.emulator.bootstrap_key, public_header=False, zero=False)
    assert refused(iam.list_users) == (403, "InvalidClientTokenId")


def test_the_emulators_secret_is_in_no_file_of_the_stack(stack: LocalStack) -> None:
    secret = stack.emulator.bootstrap_key[1]
    files = [path for path in stack.state_dir.rglob("*") if path.is_file()]
    assert stack.state_dir / "emulator-requests.jsonl" in files
    for path in files:
        assert secret not in path.read_text(encoding="utf-8", errors="replace"), path
