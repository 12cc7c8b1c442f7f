"""The `sts-proof` identity mode (docs/design.md §2) against a real moto server with IAM auth enforced.

The moto server here is a bare one: whatever stsvend must refuse, it refuses by its own checks.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.aws import AwsClients
from chalicelib.config import Settings
from chalicelib.identity import StsProofIdentity, StsProofVerifier, normalize_server_id, request_binding
from stsvend.client.location import server_id_for
from stsvend.errors import EXIT_USAGE, CommandError
from tests.functional.conftest import READ_ONLY, Stack, moto_api, settings_env

SERVER_ID = "https://stsvend.example/api"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
VEND_BODY = json.dumps({"role_arn": READ_ONLY})


def binding_for(path: str, body: str | None = None) -> str:
    method = "POST" if path == "/credentials" else "GET"
    return request_binding(method, path, (body or "").encode())


def make_proof(
    creds: Credentials,
    url: str,
    binding: str | None,
    server_id: str | None = SERVER_ID,
    body: str = BODY,
    tamper: Callable[[dict[str, Any]], None] | None = None,
    extra_headers: dict[str, str] | None = None,
    service: str = "sts",
    region: str = "us-east-1",
) -> str:
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(extra_headers or {})}
    if server_id is not None:
        headers["X-Stsvend-Server-Id"] = server_id
    if binding is not None:
        headers["X-Stsvend-Request"] = binding
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(creds, service, region).add_auth(request)
    proof = {"method": "POST", "url": url, "headers": dict(request.headers.items()), "body": body}
    if tamper is not None:
        tamper(proof)
    return encode(proof)


def encode(proof: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(proof).encode()).decode()


class ProofStack:
    def __init__(self, stack: Stack, caller: Credentials, caller_arn: str, caller_id: str) -> None:
        self.stack = stack
        self.caller_id = caller_id
        self.caller = caller
        self.caller_arn = caller_arn
        self.sts_calls = 0
        self.forwarded: list[dict[str, str]] = []
        self._clients = AwsClients("us-east-1")

    def call(self, path: str, proof: str | None, body: Any = None) -> Any:
        headers = {} if proof is None else {"X-Stsvend-Identity": proof}
        method = "POST" if path == "/credentials" else "GET"
        return self.stack.invoke(method, path, body, identity={"sourceIp": "127.0.0.1"}, headers=headers)

    def proof(self, path: str, api_body: str | None = None, **proof_args: Any) -> str:
        """A proof by the caller, bound to `path` with `api_body` unless `binding` says otherwise."""
        binding = proof_args.pop("binding", binding_for(path, api_body))
        return make_proof(self.caller, self.stack.url + "/", binding, **proof_args)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """The service's own poster, counting and recording what it sends."""
        self.sts_calls += 1
        self.forwarded.append(dict(headers))
        return self._clients.post(url, headers, body)

    def serve_with_clock(self, clock: Callable[[], float]) -> None:
        """Serve with a verifier whose clock is `clock` (injected, as any resolver would be)."""
        settings = Settings.from_env()
        verifier = StsProofVerifier(
            self.stack.url, settings.server_ids, settings.region, self.post, clock=clock
        )
        self.stack.serve(identity=StsProofIdentity(verifier))


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
    env["STSVEND_SERVER_ID"] = f"http://127.0.0.1:1,{SERVER_ID}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = ProofStack(
        stack,
        Credentials(keys["builder"]["AccessKeyId"], keys["builder"]["SecretAccessKey"]),
        builder_arn,
        iam.get_user(UserName="builder")["User"]["UserId"],
    )
    result.serve_with_clock(time.time)
    moto_api(stack.url, "/moto-api/reset-auth", b"0")  # IAM authentication enforced from here
    try:
        yield result
    finally:
        moto_api(stack.url, "/moto-api/reset-auth", b"1000000000")


def test_valid_proof_identifies_the_caller(proof_stack: ProofStack) -> None:
    answer = proof_stack.call("/whoami", proof_stack.proof("/whoami"))
    assert answer.status == 200, answer.body
    assert answer.body["Arn"] == proof_stack.caller_arn
    assert answer.body["UserId"] == proof_stack.caller_id
    assert answer.body["IdentityMode"] == "sts-proof"


def test_only_signed_headers_are_forwarded_to_sts(proof_stack: ProofStack) -> None:
    def add_unsigned(proof: dict[str, Any]) -> None:
        proof["headers"]["X-Unsigned-Extra"] = "smuggled"

    proof = proof_stack.proof("/whoami", tamper=add_unsigned)
    assert proof_stack.call("/whoami", proof).status == 200
    (forwarded,) = proof_stack.forwarded
    assert "x-unsigned-extra" not in forwarded
    assert {"authorization", "x-amz-date", "x-stsvend-server-id", "content-type"} <= set(forwarded)
    assert set(forwarded) == {
        "authorization", "x-amz-date", "x-stsvend-server-id", "x-stsvend-request", "content-type"
    }
    assert "host" not in forwarded  # the server's own, for its configured endpoint


def test_valid_proof_vends_under_the_callers_grant(proof_stack: ProofStack) -> None:
    body = json.dumps({"role_arn": "arn:aws:iam::123456789012:role/read-only"})
    answer = proof_stack.call("/credentials", proof_stack.proof("/credentials", body), body)
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
    proof["headers"]["X-Stsvend-Server-Id"] = SERVER_ID
    # signed for another id, value rewritten: the signature no longer matches


@pytest.mark.parametrize(
    ("proof_args", "reaches_sts"),
    [
        ({"tamper": _flip_signature}, True),
        ({"server_id": "https://other.example/api"}, False),
        ({"server_id": "https://other.example/api", "tamper": _swap_server_id_after_signing}, True),
        ({"server_id": None}, False),
        ({"body": "Action=GetSessionToken&Version=2011-06-15"}, False),
        ({"tamper": lambda p: p.update(method="GET")}, False),
        ({"tamper": lambda p: p["headers"].update({"X-Amz-Date": "20200101T000000Z"})}, False),
        ({"tamper": lambda p: p.update(extra=1)}, False),
        ({"server_id": "https://other.example/api", "tamper": _decoy_signed_headers}, False),
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
    proof = proof_stack.proof("/credentials", VEND_BODY, **proof_args)
    answer = proof_stack.call("/credentials", proof, VEND_BODY)
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
    proof_stack.serve_with_clock(lambda: time.time() + 301)
    answer = proof_stack.call("/whoami", proof_stack.proof("/whoami"))
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
        proof = make_proof(proof_stack.caller, foreign, binding_for("/credentials", VEND_BODY))
        answer = proof_stack.call("/credentials", proof, VEND_BODY)
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
    proof = make_proof(stranger, proof_stack.stack.url + "/", binding_for("/whoami"))
    answer = proof_stack.call("/whoami", proof)
    assert answer.status == 401
    assert proof_stack.sts_calls == 1
    assert "InvalidClientTokenId" in answer.body["Message"]


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

    body = json.dumps({"role_arn": untrusting})
    answer = proof_stack.call("/credentials", proof_stack.proof("/credentials", body), body)

    assert answer.status == 502, answer.body
    assert answer.body["Code"] == "AssumeRoleDenied"
    assert "trust policy" in answer.body["Message"]
    assert "AccessKeyId" not in answer.body


# --- issue: the verifier forwarded whatever a proof claimed was signed (a forgery) ----------------


def _forged(access_key_id: str, binding: str, signed: str, target: bool = True) -> str:
    """What an attacker holding only someone's access key id can write: no secret, zero signature."""
    now = datetime.now(timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Amz-Date": amz_date,
        "X-Amz-Target": "AWSCognitoIdentityService.GetId",
        "X-Stsvend-Server-Id": SERVER_ID,
        "X-Stsvend-Request": binding,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key_id}/{amz_date[:8]}/us-east-1/sts/aws4_request, "
            f"SignedHeaders={signed}, Signature={'0' * 64}"
        ),
    }
    if not target:
        del headers["X-Amz-Target"]
    return encode({"method": "POST", "url": "REPLACED", "headers": headers, "body": BODY})


def test_forged_proof_signing_x_amz_target_is_refused_before_sts(proof_stack: ProofStack) -> None:
    """The emulator answers a request carrying this X-Amz-Target without checking its signature;
    stsvend must never forward a header outside the allow-list, nor accept one as signed."""
    proof = json.loads(
        base64.b64decode(
            _forged(
                proof_stack.caller.access_key,
                binding_for("/credentials", VEND_BODY),
                "content-type;host;x-amz-date;x-amz-target;x-stsvend-request;x-stsvend-server-id",
            )
        )
    )
    proof["url"] = proof_stack.stack.url + "/"
    answer = proof_stack.call("/credentials", encode(proof), VEND_BODY)

    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert "x-amz-target" in answer.body["Message"]
    assert "AccessKeyId" not in answer.body
    assert proof_stack.sts_calls == 0
    assert proof_stack.stack.sent == []


def test_forged_proof_with_an_unsigned_x_amz_target_reaches_sts_without_it(
    proof_stack: ProofStack,
) -> None:
    proof = json.loads(
        base64.b64decode(
            _forged(
                proof_stack.caller.access_key,
                binding_for("/credentials", VEND_BODY),
                "content-type;host;x-amz-date;x-stsvend-request;x-stsvend-server-id",
            )
        )
    )
    proof["url"] = proof_stack.stack.url + "/"
    answer = proof_stack.call("/credentials", encode(proof), VEND_BODY)

    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    (forwarded,) = proof_stack.forwarded
    assert "x-amz-target" not in forwarded
    assert proof_stack.stack.sent == []


# --- issue: a proof was a bearer token for any request for minutes ---------------------------


@pytest.mark.parametrize(
    ("served_path", "served_body", "bound_path", "bound_body"),
    [
        ("/whoami", None, "/credentials", VEND_BODY),
        ("/roles", None, "/whoami", None),
        ("/credentials", json.dumps({"role_arn": READ_ONLY, "duration_seconds": 900}), "/credentials",
         VEND_BODY),
        ("/credentials", VEND_BODY, "/whoami", None),
    ],
    ids=["vend-proof-on-whoami", "whoami-proof-on-roles", "other-body", "whoami-proof-on-vend"],
)
def test_a_proof_replayed_on_another_request_is_not_authenticated(
    proof_stack: ProofStack,
    served_path: str,
    served_body: str | None,
    bound_path: str,
    bound_body: str | None,
) -> None:
    proof = proof_stack.proof(bound_path, bound_body)
    answer = proof_stack.call(served_path, proof, served_body)
    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert "X-Stsvend-Request" in answer.body["Message"]
    assert proof_stack.sts_calls == 0
    assert proof_stack.stack.sent == []


def test_the_binding_header_must_be_signed(proof_stack: ProofStack) -> None:
    proof = proof_stack.proof("/whoami", binding=None)
    decoded = json.loads(base64.b64decode(proof))
    decoded["headers"]["X-Stsvend-Request"] = binding_for("/whoami")  # present, but not signed
    answer = proof_stack.call("/whoami", encode(decoded))
    assert answer.status == 401
    assert "x-stsvend-request" in answer.body["Message"]
    assert proof_stack.sts_calls == 0


@pytest.mark.parametrize(
    ("shift", "status"),
    [(-120, 401), (-30, 200), (240, 200), (301, 401)],
    ids=["120s-ahead", "30s-ahead", "240s-old", "301s-old"],
)
def test_proof_dates_are_accepted_from_60s_ahead_to_300s_old(
    proof_stack: ProofStack, shift: int, status: int
) -> None:
    """The server's clock is shifted instead of the proof's date, which the signature covers."""
    proof_stack.serve_with_clock(lambda: time.time() + shift)
    answer = proof_stack.call("/whoami", proof_stack.proof("/whoami"))
    assert answer.status == status, answer.body
    assert proof_stack.sts_calls == (1 if status == 200 else 0)
    if shift == -120:
        assert "more than 60 seconds in the future" in answer.body["Message"]
    if shift == 301:
        assert "more than 5 minutes old" in answer.body["Message"]


def test_a_proof_for_any_configured_server_id_is_accepted(proof_stack: ProofStack) -> None:
    proof = proof_stack.proof("/whoami", server_id="http://127.0.0.1:1")
    assert proof_stack.call("/whoami", proof).status == 200


# --- issue: caller-caused failures must be 401 and cost at most one upstream call -------------


@pytest.mark.parametrize(
    ("proof_args", "named"),
    [
        ({"service": "execute-api"}, "service 'execute-api'"),
        ({"service": "iam"}, "service 'iam'"),
        ({"region": "eu-west-1"}, "region 'eu-west-1'"),
        ({"extra_headers": {"X-Amz-Target": "AWSCognitoIdentityService.GetId"}}, "x-amz-target"),
        ({"extra_headers": {"X-Forwarded-For": "10.0.0.1"}}, "x-forwarded-for"),
        ({"tamper": lambda p: p["headers"].update({"X-Amz-Date": "2020-01-01"})}, "X-Amz-Date"),
    ],
    ids=["execute-api", "iam", "other-region", "x-amz-target", "x-forwarded-for", "malformed-date"],
)
def test_proofs_breaking_a_rule_are_refused_naming_it(
    proof_stack: ProofStack, proof_args: dict[str, Any], named: str
) -> None:
    answer = proof_stack.call("/whoami", proof_stack.proof("/whoami", **proof_args))
    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert named in answer.body["Message"]
    assert proof_stack.sts_calls == 0


def test_deeply_nested_proof_json_is_not_authenticated(proof_stack: ProofStack) -> None:
    answer = proof_stack.call("/whoami", base64.b64encode(b"[" * 3000).decode())
    assert answer.status == 401
    assert "nested" in answer.body["Message"]
    assert proof_stack.sts_calls == 0


class _FakeSts(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hits.append(self.path)
        status, body = self.answers[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


def _error(code: str) -> bytes:
    return f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code></Error></ErrorResponse>".encode()


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ((403, _error("SignatureDoesNotMatch")), 401, "NotAuthenticated"),
        ((403, _error("InvalidClientTokenId")), 401, "NotAuthenticated"),
        ((400, _error("ExpiredToken")), 401, "NotAuthenticated"),
        ((400, _error("IncompleteSignature")), 401, "NotAuthenticated"),
        ((400, _error("Throttling")), 503, "ServiceUnavailable"),
        ((500, _error("InternalFailure")), 503, "ServiceUnavailable"),
        ((503, b"busy"), 503, "ServiceUnavailable"),
        ((200, b"<not-xml"), 401, "NotAuthenticated"),
    ],
    ids=["bad-signature", "unknown-key", "expired", "incomplete", "throttled", "500", "503", "garbled"],
)
def test_sts_answers_map_to_401_or_503_after_exactly_one_call(
    answer: tuple[int, bytes], status: int, code: str
) -> None:
    """Against a stand-in STS over real HTTP with the service's own poster (no retries)."""
    _FakeSts.answers = [answer]
    _FakeSts.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeSts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        verifier = StsProofVerifier(endpoint, (SERVER_ID,), "us-east-1", AwsClients("us-east-1").post)
        binding = binding_for("/whoami")
        proof = make_proof(Credentials("AKIAEXAMPLEEXAMPLE01", "secret"), endpoint + "/", binding)
        with pytest.raises(Exception) as raised:
            verifier.verify(proof, binding)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert (getattr(raised.value, "status", None), getattr(raised.value, "code", None)) == (status, code)
    assert _FakeSts.hits == ["/"]


# --- the proof's signed Content-Type, and server ids --------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/x-amz-json-1.0", "application/x-amz-json-1.1", "text/xml"],
)
def test_a_signed_content_type_that_is_not_a_form_is_refused_before_sts(
    proof_stack: ProofStack, content_type: str
) -> None:
    # The body STS gets is always the GetCallerIdentity form; a caller-signed JSON media type made
    # the STS endpoint fail (moto: HTTP 5xx), which the service reported as its own outage (503):
    # a 5xx any caller could cause at will, that its client then retried.
    proof = proof_stack.proof("/whoami", extra_headers={"Content-Type": content_type})
    answer = proof_stack.call("/whoami", proof)
    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert "Content-Type" in answer.body["Message"]
    assert proof_stack.sts_calls == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
    ],
)
def test_form_content_types_as_sdks_sign_them_are_accepted(
    proof_stack: ProofStack, content_type: str
) -> None:
    proof = proof_stack.proof("/whoami", extra_headers={"Content-Type": content_type})
    answer = proof_stack.call("/whoami", proof)
    assert answer.status == 200, answer.body
    assert answer.body["Arn"] == proof_stack.caller_arn


@pytest.mark.parametrize(
    ("named", "other"),
    [
        ("https://[2001:db8::1]:8443", "https://[2001:db8::1:8443]"),
        ("http://[::1]:8000", "http://[::1:8000]"),
    ],
)
def test_ipv6_server_ids_keep_their_brackets_so_two_hosts_never_share_one(named: str, other: str) -> None:
    # Without brackets, host [2001:db8::1] port 8443 and host [2001:db8::1:8443] port 443 both
    # became https://2001:db8::1:8443: a client sent to the second handed it a proof valid at the first.
    assert normalize_server_id(named) == named
    assert normalize_server_id(other) == other
    assert server_id_for(named, None, {}) == named
    assert server_id_for(other, None, {}) == other
    with pytest.raises(CommandError) as refused:
        server_id_for(other, named, {})
    assert refused.value.exit_status == EXIT_USAGE
    assert Settings.from_env(
        {**settings_env("http://127.0.0.1:1", mode="sts-proof"), "STSVEND_SERVER_ID": named}
    ).server_ids == (named,)
