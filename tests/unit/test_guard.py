"""The emulator's guard on its own, in front of an app that answers everything: what it lets through
holds by its own check (moto is not involved), with requests signed by botocore's real signer."""

from __future__ import annotations

import datetime
import io
import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client

from stsvend.local.guard import BOOTSTRAP_KEY_ID, CONTROL_HEADER, Guard, Key

SECRET = "s" * 40
NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)
USER = ("AKIAUSERUSERUSER0001", "user-secret-user-secret-user-secret-0000")
SESSION = ("ASIASESSIONSESSION01", "session-secret-session-secret-session-00", "the-session-token")
KEYS = {
    USER[0]: Key(USER[1], "111111111111"),
    SESSION[0]: Key(SESSION[1], "111111111111", SESSION[2], NOW + datetime.timedelta(hours=1)),
    "AKIAINACTIVEINACTIVE": Key("inactive-secret", "111111111111", active=False),
    "ASIAEXPIREDEXPIRED01": Key("expired-secret", "111111111111", "t", NOW - datetime.timedelta(seconds=1)),
}
FORM = "application/x-www-form-urlencoded; charset=utf-8"


class Inner:
    """The app behind the guard: answers 200 to everything and counts what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.bodies.append(environ["wsgi.input"].read())
        self.environs.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"answered"]


def guarded(enforcing: bool = True) -> tuple[Client, Inner, Guard]:
    inner = Inner()
    guard = Guard(inner, SECRET, KEYS.get, clock=lambda: NOW, log=lambda _: None)
    guard.enforcing = enforcing
    return Client(guard), inner, guard


def signed(
    service: str,
    body: bytes,
    key: tuple[str, ...],
    headers: dict[str, str] | None = None,
    when: datetime.datetime = NOW,
    path: str = "/",
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=f"http://localhost{path}",
        data=body,
        headers={"Content-Type": FORM, **(headers or {})},
    )
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    credentials = Credentials(key[0], key[1], key[2] if len(key) > 2 else None)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    # add_auth stamps the current time; sign with the guard's clock instead.
    signer_instance = signer(credentials, service, "us-east-1")
    signer_instance._modify_request_before_signing(request)  # noqa: SLF001 - the signer's own steps
    canonical = signer_instance.canonical_request(request)
    signature = signer_instance.signature(signer_instance.string_to_sign(request, canonical), request)
    signer_instance._inject_signature_to_request(request, signature)  # noqa: SLF001
    return request


def send(client: Client, request: AWSRequest, body: bytes | None = None) -> Any:
    url = request.url.split("localhost", 1)[1]
    path, _, query = url.partition("?")
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    headers["Host"] = "localhost"
    return client.open(
        path,
        method=request.method,
        query_string=query,
        headers=headers,
        data=request.body if body is None else body,
    )


def code_of(response: Any) -> str:
    text = response.get_data(as_text=True)
    if response.headers.get("Content-Type", "").startswith("application/x-amz-json"):
        return str(json.loads(text)["__type"].split("#")[1])
    match = re.search(r"<Code>([^<]+)</Code>", text)
    assert match, text
    return match.group(1)


BODY = b"Action=ListUsers&Version=2010-05-08"


def test_a_correctly_signed_request_reaches_the_app_with_its_body() -> None:
    client, inner, _ = guarded()
    response = send(client, signed("iam", BODY, USER))
    assert response.status_code == 200
    assert inner.bodies == [BODY]


def test_a_session_key_needs_its_own_token_and_an_unexpired_session() -> None:
    client, inner, _ = guarded()
    assert send(client, signed("sts", BODY, SESSION)).status_code == 200
    wrong = signed("sts", BODY, (SESSION[0], SESSION[1], "another-token"))
    assert (send(client, wrong).status_code, code_of(send(client, wrong))) == (403, "InvalidClientTokenId")
    no_token = signed("sts", BODY, SESSION[:2])
    assert code_of(send(client, no_token)) == "InvalidClientTokenId"
    expired = signed("sts", BODY, ("ASIAEXPIREDEXPIRED01", "expired-secret", "t"))
    assert code_of(send(client, expired)) == "ExpiredToken"
    user_with_token = signed("sts", BODY, (*USER, "a-token"))
    assert code_of(send(client, user_with_token)) == "InvalidClientTokenId"
    assert len(inner.bodies) == 1


@pytest.mark.parametrize(
    ("service", "headers", "unknown", "mismatch"),
    [
        (
            "sts",
            {"X-Amz-Target": "AWSCognitoIdentityService.GetId"},
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
        ),
        (
            "iam",
            {"X-Amz-Target": "AWSCognitoIdentityService.GetId"},
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
        ),
        ("ec2", {"X-Amz-Target": "AWSCognitoIdentityService.GetId"}, "AuthFailure", "AuthFailure"),
        (
            "dynamodb",
            {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"},
            "UnrecognizedClientException",
            "InvalidSignatureException",
        ),
    ],
)
def test_made_up_keys_zero_signatures_and_inactive_keys_never_reach_the_app(
    service: str, headers: dict[str, str], unknown: str, mismatch: str
) -> None:
    client, inner, _ = guarded()
    made_up = signed(service, BODY, ("AKIAMADEUPMADEUP0001", "made-up"), headers)
    assert (send(client, made_up).status_code, code_of(send(client, made_up))) == (403, unknown)
    inactive = signed(service, BODY, ("AKIAINACTIVEINACTIVE", "inactive-secret"), headers)
    assert code_of(send(client, inactive)) == unknown
    zero = signed(service, BODY, USER, headers)
    zero.headers["Authorization"] = re.sub(
        r"Signature=\w+", "Signature=" + "0" * 64, zero.headers["Authorization"]
    )
    assert (send(client, zero).status_code, code_of(send(client, zero))) == (403, mismatch)
    unsigned = AWSRequest(method="POST", url="http://localhost/", data=BODY, headers=headers)
    assert send(client, unsigned).status_code == 403
    assert inner.bodies == []


def test_a_body_altered_after_signing_is_refused() -> None:
    client, inner, _ = guarded()
    request = signed("iam", BODY, USER)
    response = send(client, request, BODY.replace(b"ListUsers", b"ListRoles"))
    assert (response.status_code, code_of(response)) == (403, "SignatureDoesNotMatch")
    # S3 is not served (test_guard_authorization.py), but its signature is still checked first.
    s3 = signed("s3", b"object", USER, path="/bucket/key")
    assert code_of(send(client, s3)) == "AccessDenied"
    assert code_of(send(client, s3, b"changed")) == "SignatureDoesNotMatch"
    assert inner.bodies == []


def test_a_signed_header_changed_after_signing_is_refused() -> None:
    client, _, _ = guarded()
    request = signed("dynamodb", b"{}", USER, {"X-Amz-Target": "DynamoDB_20120810.ListTables"})
    request.headers.replace_header("X-Amz-Target", "DynamoDB_20120810.DeleteTable")
    assert code_of(send(client, request)) == "InvalidSignatureException"


def test_a_date_more_than_15_minutes_off_is_refused() -> None:
    client, _, _ = guarded()
    for off in (datetime.timedelta(minutes=16), -datetime.timedelta(minutes=16)):
        assert code_of(send(client, signed("iam", BODY, USER, when=NOW + off))) == "SignatureDoesNotMatch"
    assert (
        send(client, signed("iam", BODY, USER, when=NOW - datetime.timedelta(minutes=14))).status_code == 200
    )


def presigned(expires: int = 60, when: datetime.datetime = NOW) -> AWSRequest:
    request = AWSRequest(method="GET", url="http://localhost/?Action=GetCallerIdentity&Version=2011-06-15")
    signer = SigV4QueryAuth(Credentials(*USER), "sts", "us-east-1", expires=expires)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)  # noqa: SLF001
    canonical = signer.canonical_request(request)
    signer._inject_signature_to_request(
        request, signer.signature(signer.string_to_sign(request, canonical), request)
    )  # noqa: SLF001
    return request


def test_a_presigned_request_is_verified_and_expires() -> None:
    client, inner, _ = guarded()
    assert send(client, presigned(), b"").status_code == 200
    tampered = presigned()
    tampered.url = tampered.url.replace("GetCallerIdentity", "GetSessionToken")
    assert code_of(send(client, tampered, b"")) == "SignatureDoesNotMatch"
    old = presigned(expires=60, when=NOW - datetime.timedelta(seconds=61))
    assert code_of(send(client, old, b"")) == "SignatureDoesNotMatch"
    assert len(inner.bodies) == 1


def test_a_scope_that_could_steer_moto_to_another_app_is_refused() -> None:
    client, inner, _ = guarded()
    request = signed("iam", BODY, USER)
    request.headers["Authorization"] = request.headers["Authorization"].replace(
        "/us-east-1/iam/", "/amazonaws.com/motoapi/"
    )
    assert send(client, request).status_code == 403
    assert inner.bodies == []


def test_an_account_header_must_name_the_keys_own_account() -> None:
    client, inner, _ = guarded()
    other = signed("iam", BODY, USER, {"x-moto-account-id": "222222222222"})
    assert code_of(send(client, other)) == "InvalidClientTokenId"
    own = signed("iam", BODY, USER, {"x-moto-account-id": "111111111111"})
    assert send(client, own).status_code == 200


def test_before_enforcement_only_the_bootstrap_key_is_accepted_and_only_until_then() -> None:
    client, inner, guard = guarded(enforcing=False)
    bootstrap = (BOOTSTRAP_KEY_ID, SECRET)
    assert send(client, signed("iam", BODY, bootstrap)).status_code == 200
    assert (
        code_of(send(client, signed("iam", BODY, (BOOTSTRAP_KEY_ID, "guessed")))) == "SignatureDoesNotMatch"
    )
    assert code_of(send(client, signed("iam", BODY, USER))) == "InvalidClientTokenId"
    unsigned = client.post("/", data=BODY, headers={"X-Amz-Target": "AWSCognitoIdentityService.GetId"})
    assert unsigned.status_code == 403
    assert client.post("/moto-api/reset-auth", data=b"0", headers={CONTROL_HEADER: SECRET}).status_code == 200
    assert guard.enforcing
    assert code_of(send(client, signed("iam", BODY, bootstrap))) == "InvalidClientTokenId"
    assert send(client, signed("iam", BODY, USER)).status_code == 200


@pytest.mark.parametrize(
    "path", ["/moto-api/reset-auth", "/moto-api/reset", "/moto-api/", "//moto-api/reset-auth"]
)
def test_the_control_api_needs_the_secret_and_enforcement_stays_on(path: str) -> None:
    client, inner, guard = guarded()
    for headers in ({}, {CONTROL_HEADER: "wrong-" + SECRET}):
        response = client.post(path, data=b"inf", headers={"Content-Type": "text/plain", **headers})
        assert response.status_code == 403
    assert inner.bodies == []
    refused = client.post("/moto-api/reset-auth", data=b"inf", headers={CONTROL_HEADER: SECRET})
    assert refused.status_code == 403
    assert guard.enforcing
    assert client.get("/moto-api/config", headers={CONTROL_HEADER: SECRET}).status_code == 200
    assert SECRET not in json.dumps(inner.environs[-1], default=str)  # moto (and its recording) never see it


def test_the_guard_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Guard(Inner(), "short", KEYS.get)


def test_a_date_that_is_no_date_is_refused_not_a_server_error() -> None:
    client, inner, _ = guarded()
    request = signed("iam", BODY, USER)
    request.headers.replace_header("X-Amz-Date", "20261201T996060Z")
    response = send(client, request)
    assert (response.status_code, code_of(response)) == (403, "SignatureDoesNotMatch")
    assert inner.bodies == []


@pytest.mark.parametrize("length", ["²", "-1", "1e3", " 12x"])
def test_a_content_length_that_is_not_ascii_digits_is_refused_not_a_server_error(length: str) -> None:
    guard = Guard(Inner(), SECRET, KEYS.get, clock=lambda: NOW, log=lambda _: None)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(BODY),
    }
    statuses: list[str] = []
    guard(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["403 Forbidden"]
