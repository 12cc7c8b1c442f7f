"""The `sts-proof` identity mode (DESIGN.md §2) against a real moto server with IAM auth enforced."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import app as app_module
from chalicelib.identity import StsProofVerifier
from tests.functional.conftest import READ_ONLY, Stack, moto_api, settings_env

SERVER_ID = "stsvend-test"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"


def make_proof(
    creds: Credentials,
    url: str,
    server_id: str | None = SERVER_ID,
    body: str = BODY,
    tamper: Callable[[dict[str, Any]], None] | None = None,
) -> str:
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if server_id is not None:
        headers["X-Stsvend-Server-Id"] = server_id
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(creds, "sts", "us-east-1").add_auth(request)
    proof = {"method": "POST", "url": url, "headers": dict(request.headers.items()), "body": body}
    if tamper is not None:
        tamper(proof)
    return base64.b64encode(json.dumps(proof).encode()).decode()


class ProofStack:
    def __init__(self, stack: Stack, caller: Credentials, caller_arn: str, caller_id: str) -> None:
        self.stack = stack
        self.caller_id = caller_id
        self.caller = caller
        self.caller_arn = caller_arn
        self.sts_calls = 0
        self.forwarded: list[dict[str, str]] = []

    def call(self, path: str, proof: str | None, body: Any = None) -> Any:
        headers = {} if proof is None else {"X-Stsvend-Identity": proof}
        method = "POST" if path == "/credentials" else "GET"
        return self.stack.invoke(method, path, body, identity={"sourceIp": "127.0.0.1"}, headers=headers)


@pytest.fixture
def proof_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProofStack]:
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=stack.url)
    keys = {}
    for name in ("stsvend-service", "builder"):
        iam.create_user(UserName=name)
        keys[name] = iam.create_access_key(UserName=name)["AccessKey"]
    iam.put_user_policy(
        UserName="stsvend-service",
        PolicyName="service",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "dynamodb:Query",
                            "sts:AssumeRole",
                            "sts:TagSession",
                            "sts:SetSourceIdentity",
                        ],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    iam.create_role(
        RoleName="read-only",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/stsvend-service"},
                        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                    }
                ],
            }
        ),
    )
    builder_arn = "arn:aws:iam::123456789012:user/builder"
    stack.put_grant(
        {
            "principal": builder_arn,
            "roles": [{"role_arn": READ_ONLY.replace("111111111111", "123456789012")}],
        }
    )
    env = settings_env(stack.url, mode="sts-proof")
    env["AWS_ACCESS_KEY_ID"] = keys["stsvend-service"]["AccessKeyId"]
    env["AWS_SECRET_ACCESS_KEY"] = keys["stsvend-service"]["SecretAccessKey"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stack.serve()
    result = ProofStack(
        stack,
        Credentials(keys["builder"]["AccessKeyId"], keys["builder"]["SecretAccessKey"]),
        builder_arn,
        iam.get_user(UserName="builder")["User"]["UserId"],
    )
    original_post = stack.clients.post

    def counting_post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        result.sts_calls += 1
        result.forwarded.append(dict(headers))
        return original_post(url, headers, body)

    monkeypatch.setattr(stack.clients, "post", counting_post)
    moto_api(stack.url, "/moto-api/reset-auth", b"0")  # IAM authentication enforced from here
    try:
        yield result
    finally:
        moto_api(stack.url, "/moto-api/reset-auth", b"1000000000")


def test_valid_proof_identifies_the_caller(proof_stack: ProofStack) -> None:
    answer = proof_stack.call("/whoami", make_proof(proof_stack.caller, proof_stack.stack.url + "/"))
    assert answer.status == 200, answer.body
    assert answer.body["Arn"] == proof_stack.caller_arn
    assert answer.body["UserId"] == proof_stack.caller_id
    assert answer.body["IdentityMode"] == "sts-proof"


def test_only_signed_headers_are_forwarded_to_sts(proof_stack: ProofStack) -> None:
    def add_unsigned(proof: dict[str, Any]) -> None:
        proof["headers"]["X-Unsigned-Extra"] = "smuggled"

    proof = make_proof(proof_stack.caller, proof_stack.stack.url + "/", tamper=add_unsigned)
    assert proof_stack.call("/whoami", proof).status == 200
    (forwarded,) = proof_stack.forwarded
    assert "x-unsigned-extra" not in forwarded
    assert {"authorization", "x-amz-date", "x-stsvend-server-id", "content-type"} <= set(forwarded)
    assert "host" not in forwarded  # the server's own, for its configured endpoint


def test_valid_proof_vends_under_the_callers_grant(proof_stack: ProofStack) -> None:
    proof = make_proof(proof_stack.caller, proof_stack.stack.url + "/")
    answer = proof_stack.call("/credentials", proof, {"role_arn": "arn:aws:iam::123456789012:role/read-only"})
    assert answer.status == 200, answer.body
    assert answer.body["AssumedRoleArn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/read-only/builder-"
    )
    assert proof_stack.stack.sent[0]["SourceIdentity"] == "builder"


def _decoy_signed_headers(proof: dict[str, Any]) -> None:
    """A proof signed for another service, dressed up with an unsigned server-id header and a decoy
    `SignedHeaders=` naming it ahead of the real one."""
    proof["headers"]["X-Stsvend-Server-Id"] = SERVER_ID
    auth = proof["headers"]["Authorization"]
    proof["headers"]["Authorization"] = auth.replace(
        "SignedHeaders=", "XSignedHeaders=x-stsvend-server-id, SignedHeaders=", 1
    )


def _flip_signature(proof: dict[str, Any]) -> None:
    auth = proof["headers"]["Authorization"]
    proof["headers"]["Authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")


def _swap_server_id_after_signing(proof: dict[str, Any]) -> None:
    proof["headers"]["X-Stsvend-Server-Id"] = "stsvend-test"
    # signed for another id, value rewritten: the signature no longer matches


@pytest.mark.parametrize(
    ("proof_args", "reaches_sts"),
    [
        ({"tamper": _flip_signature}, True),
        ({"server_id": "stsvend-other"}, False),
        ({"server_id": "stsvend-other", "tamper": _swap_server_id_after_signing}, True),
        ({"server_id": None}, False),
        ({"body": "Action=GetSessionToken&Version=2011-06-15"}, False),
        ({"tamper": lambda p: p.update(method="GET")}, False),
        ({"tamper": lambda p: p["headers"].update({"X-Amz-Date": "20200101T000000Z"})}, False),
        ({"tamper": lambda p: p.update(extra=1)}, False),
        ({"server_id": "stsvend-other", "tamper": _decoy_signed_headers}, False),
        ({"tamper": lambda p: p["headers"].update({"X-Extra": "a\r\nX-Injected: 1"})}, False),
        ({"tamper": lambda p: p["headers"].update({"Transfer-Encoding ": "chunked"})}, False),
        ({"tamper": lambda p: p["headers"].update({"X-Extra": "caf\u00e9"})}, False),
    ],
    ids=[
        "bad-signature",
        "foreign-server-id",
        "server-id-rewritten",
        "no-server-id",
        "not-get-caller-identity",
        "not-post",
        "stale-date-header",
        "extra-field",
        "decoy-signed-headers",
        "crlf-in-value",
        "padded-name",
        "non-ascii-value",
    ],
)
def test_bad_proofs_are_not_authenticated(
    proof_stack: ProofStack, proof_args: dict[str, Any], reaches_sts: bool
) -> None:
    proof = make_proof(proof_stack.caller, proof_stack.stack.url + "/", **proof_args)
    answer = proof_stack.call("/credentials", proof, {"role_arn": READ_ONLY})
    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert proof_stack.sts_calls == (1 if reaches_sts else 0)
    assert proof_stack.stack.sent == []


@pytest.mark.parametrize(
    "header",
    [None, "", "not base64!", base64.b64encode(b"[1,2]").decode(), "A" * 9000],
    ids=["missing", "empty", "garbage", "not-an-object", "oversized"],
)
def test_malformed_proof_headers(proof_stack: ProofStack, header: str | None) -> None:
    answer = proof_stack.call("/whoami", header)
    assert answer.status == 401
    assert answer.body["Code"] == "NotAuthenticated"
    assert proof_stack.sts_calls == 0


def test_stale_proof_is_rejected_before_sts(proof_stack: ProofStack) -> None:
    service = app_module.service()
    service._verifier = StsProofVerifier(
        proof_stack.stack.clients.sts_endpoint(),
        SERVER_ID,
        proof_stack.stack.clients.post,
        clock=lambda: time.time() + 301,
    )
    answer = proof_stack.call("/whoami", make_proof(proof_stack.caller, proof_stack.stack.url + "/"))
    assert answer.status == 401
    assert proof_stack.sts_calls == 0


def test_proof_for_a_foreign_url_is_never_sent_there(proof_stack: ProofStack) -> None:
    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        foreign = f"http://127.0.0.1:{server.server_address[1]}/"
        answer = proof_stack.call(
            "/credentials", make_proof(proof_stack.caller, foreign), {"role_arn": READ_ONLY}
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert answer.status == 401
    assert answer.body["Code"] == "NotAuthenticated"
    assert hits == []
    assert proof_stack.sts_calls == 0


def test_unknown_access_key_is_not_authenticated(proof_stack: ProofStack) -> None:
    stranger = Credentials("AKIAUNKNOWNKEY000001", "not-a-real-secret")
    answer = proof_stack.call("/whoami", make_proof(stranger, proof_stack.stack.url + "/"))
    assert answer.status == 401
    assert proof_stack.sts_calls == 1


def test_role_that_does_not_trust_the_service_is_assume_role_denied(proof_stack: ProofStack) -> None:
    # IAM auth is on: switch it off briefly to set the scene, as an administrator would.
    moto_api(proof_stack.stack.url, "/moto-api/reset-auth", b"1000000000")
    boto3.client("iam", region_name="us-east-1", endpoint_url=proof_stack.stack.url).create_role(
        RoleName="untrusting",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/someone-else"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    untrusting = "arn:aws:iam::123456789012:role/untrusting"
    proof_stack.stack.put_grant({"principal": proof_stack.caller_arn, "roles": [{"role_arn": untrusting}]})
    moto_api(proof_stack.stack.url, "/moto-api/reset-auth", b"0")

    proof = make_proof(proof_stack.caller, proof_stack.stack.url + "/")
    answer = proof_stack.call("/credentials", proof, {"role_arn": untrusting})

    assert answer.status == 502, answer.body
    assert answer.body["Code"] == "AssumeRoleDenied"
    assert "trust policy" in answer.body["Message"]
    assert "AccessKeyId" not in answer.body
