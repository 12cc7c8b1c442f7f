"""The emulator's guard hands moto only requests moto will authorize, by its own checks: correctly
signed requests still never reach the app behind it (which answers everything) with moto's
"public operation" header, for a service or path moto answers unchecked, with an X-Amz-Target that
is not the signed service's current API or an Action spelled other than the operation's name, or
while moto's enforcement is off; a presigned request reaches it signed in its headers."""

from __future__ import annotations

import datetime
import gzip
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client

from stsvend.local.guard import BOOTSTRAP_KEY_ID, MAX_BODY_BYTES, PUBLIC_OPERATIONS, Guard, verify
from tests.unit.test_guard import (
    BODY,
    KEYS,
    NOW,
    SECRET,
    SESSION,
    USER,
    Inner,
    code_of,
    guarded,
    send,
    signed,
)

JSON = "application/x-amz-json-1.0"
# protocol of the signed service -> the code AWS gives a request the caller may not make
DENIED = {"iam": "AccessDenied", "sts": "AccessDenied", "ec2": "UnauthorizedOperation", "s3": "AccessDenied"}


def refused(response: Any, code: str) -> bool:
    return bool(response.status_code == 403 and code_of(response) == code)


@pytest.mark.parametrize("operation", PUBLIC_OPERATIONS)
@pytest.mark.parametrize("service", ["iam", "sts", "ec2", "s3", "dynamodb"])
def test_a_public_operation_header_never_reaches_moto_whatever_the_service(
    operation: str, service: str
) -> None:
    client, inner, _ = guarded()
    path = "/bucket/key" if service == "s3" else "/"
    body = b"{}" if service == "dynamodb" else BODY
    code = DENIED.get(service, "AccessDeniedException")
    for spelled in (
        operation,
        operation.lower(),
        f" {operation} ",
        f"DynamoDB_20120810.ListTables, {operation}",
    ):
        headers = {"X-Amz-Target": spelled}
        if service == "dynamodb":
            headers["Content-Type"] = JSON
        response = send(client, signed(service, body, USER, headers, path=path))
        assert refused(response, code), (spelled, response.get_data())
        # Signed by a session, or by the bootstrap key before enforcement: the same.
        assert refused(send(client, signed(service, body, SESSION, headers, path=path)), code)
    bootstrap, inner_before, _ = guarded(enforcing=False)
    headers = {"X-Amz-Target": operation, **({"Content-Type": JSON} if service == "dynamodb" else {})}
    assert (
        send(bootstrap, signed(service, body, (BOOTSTRAP_KEY_ID, SECRET), headers, path=path)).status_code
        == 403
    )
    assert inner.bodies == inner_before.bodies == []


@pytest.mark.parametrize("service", ["es", "cognito-identity", "cognito-idp", "sqs", "lambda", "execute-api"])
def test_a_service_moto_was_not_audited_for_never_reaches_it(service: str) -> None:
    client, inner, _ = guarded()
    response = send(client, signed(service, BODY, USER))
    assert response.status_code == 403
    assert inner.bodies == []


@pytest.mark.parametrize(
    ("service", "body", "headers"),
    [
        ("iam", BODY, {}),
        ("sts", b"Action=GetCallerIdentity&Version=2011-06-15", {}),
        ("ec2", b"Action=DescribeInstances&Version=2016-11-15", {}),
        ("sns", b"Action=ListTopics&Version=2010-03-31", {}),
        ("monitoring", b"Action=DescribeAlarms&Version=2010-08-01", {}),
        (
            "monitoring",
            b"{}",
            {"X-Amz-Target": "GraniteServiceVersion20100801.DescribeAlarms", "Content-Type": JSON},
        ),
        ("logs", b"{}", {"X-Amz-Target": "Logs_20140328.DescribeLogGroups", "Content-Type": JSON}),
        ("dynamodb", b"{}", {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": JSON}),
        ("dynamodb", b"{}", {"X-Amz-Target": "DynamoDBStreams_20120810.ListStreams", "Content-Type": JSON}),
        (
            "cloudtrail",
            b"{}",
            {
                "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
                "Content-Type": JSON,
            },
        ),
    ],
)
def test_the_services_the_stack_uses_are_handed_on(
    service: str, body: bytes, headers: dict[str, str]
) -> None:
    client, inner, _ = guarded()
    assert send(client, signed(service, body, USER, headers)).status_code == 200
    assert inner.bodies == [body]


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("ec2", "/latest/meta-data/iam/security-credentials/"),
        ("s3", "/latest/api/token"),
        ("s3", "/latest/meta-data"),
        ("s3", "/%6Catest/meta-data/"),
        ("sns", "/SimpleNotificationService-0000.pem"),
        ("iam", "/anything"),
        ("sts", "//"),
    ],
)
def test_a_path_moto_answers_unchecked_never_reaches_it(service: str, path: str) -> None:
    client, inner, _ = guarded()
    body = b"" if service == "s3" else BODY
    assert send(client, signed(service, body, USER, path=path)).status_code == 403
    assert inner.bodies == []


@pytest.mark.parametrize(
    ("service", "target", "extra"),
    [
        ("dynamodb", "DynamoDB_20111205.ListTables", {}),  # moto's 2011 handler checks nothing
        ("dynamodb", "DynamoDB_0.CreateTable", {}),
        ("dynamodb", "DynamoDB_20120810.listTables", {}),
        ("dynamodb", "DynamoDB_20120810.NoSuchOperation", {}),
        ("dynamodb", "DynamoDB_20120810.", {}),
        ("dynamodb", "ListTables", {}),
        ("dynamodb", None, {}),
        ("dynamodb", "Logs_20140328.DescribeLogGroups", {}),
        ("logs", "DynamoDB_20120810.ListTables", {}),
        ("iam", "DynamoDB_20120810.ListTables", {}),
        ("sts", "Logs_20140328.DescribeLogGroups", {}),
        # moto runs an Action in the query, a form body or a header before X-Amz-Target.
        ("dynamodb", "DynamoDB_20120810.ListTables", {"query": "Action=DeleteTable"}),
        ("dynamodb", "DynamoDB_20120810.ListTables", {"Action": "DeleteTable"}),
        ("dynamodb", "DynamoDB_20120810.ListTables", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("dynamodb", "DynamoDB_20120810.ListTables", {"body": b'{"a": "&Action=DeleteTable&"}'}),
        ("dynamodb", "DynamoDB_20120810.ListTables", {"Content-Type": "multipart/form-data; boundary=x"}),
    ],
)
def test_an_x_amz_target_that_is_not_the_signed_services_current_api_never_reaches_moto(
    service: str, target: str | None, extra: dict[str, Any]
) -> None:
    client, inner, _ = guarded()
    extra = dict(extra)
    query = extra.pop("query", "")
    body = extra.pop("body", b"{}")
    headers = {"Content-Type": JSON, **({"X-Amz-Target": target} if target is not None else {}), **extra}
    request = signed(service, body, USER, headers, path="/?" + query if query else "/")
    response = send(client, request)
    assert response.status_code == 403, response.get_data()
    assert inner.bodies == []


@pytest.mark.parametrize(
    ("body", "query", "headers"),
    [
        (b"Action=listUsers&Version=2010-05-08", "", {}),
        (b"Action=LISTUSERS&Version=2010-05-08", "", {}),
        (b"Action=list_users&Version=2010-05-08", "", {}),
        (b"Action=NoSuchOperation&Version=2010-05-08", "", {}),
        (b"Version=2010-05-08", "", {}),
        (b"Action=ListUsers&Action=CreateAccessKey&UserName=admin", "", {}),
        (BODY, "Action=CreateAccessKey", {}),
        (BODY, "", {"Action": "CreateAccessKey"}),
        (b"Action=ListUsers", "", {"Content-Type": "multipart/form-data; boundary=x"}),
    ],
)
def test_only_one_action_by_the_operations_own_name_reaches_moto(
    body: bytes, query: str, headers: dict[str, str]
) -> None:
    client, inner, _ = guarded()
    request = signed("iam", body, USER, headers, path="/?" + query if query else "/")
    assert refused(send(client, request), "AccessDenied")
    assert inner.bodies == []
    get = AWSRequest(method="GET", url="http://localhost/?Action=ListUsers&Version=2010-05-08")
    assert send(client, signed_get(get)).status_code == 200


def signed_get(request: AWSRequest) -> AWSRequest:
    return signed("iam", b"", USER, path="/?" + request.url.split("?", 1)[1])


def test_nothing_is_handed_on_while_moto_does_not_authorize() -> None:
    moto_checks = [False]
    inner = Inner()
    guard = Guard(
        inner,
        SECRET,
        KEYS.get,
        clock=lambda: NOW,
        log=lambda _: None,
        authorization_on=lambda: moto_checks[0],
    )
    client = Client(guard)
    # Before enforcement (the stack's bootstrap) moto checks nothing, by design: the bootstrap key only.
    assert send(client, signed("iam", BODY, (BOOTSTRAP_KEY_ID, SECRET))).status_code == 200
    guard.enforcing = True
    assert refused(send(client, signed("iam", BODY, USER)), "AccessDenied")
    assert refused(send(client, signed("ec2", b"Action=DescribeInstances", SESSION)), "UnauthorizedOperation")
    assert len(inner.bodies) == 1
    moto_checks[0] = True
    assert send(client, signed("iam", BODY, USER)).status_code == 200
    assert len(inner.bodies) == 2


def presigned(key: tuple[str, ...], query: str = "Action=GetCallerIdentity&Version=2011-06-15") -> AWSRequest:
    request = AWSRequest(method="GET", url=f"http://localhost/?{query}")
    token = key[2] if len(key) > 2 else None
    signer = SigV4QueryAuth(Credentials(key[0], key[1], token), "sts", "us-east-1", expires=60)
    request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)  # noqa: SLF001 - the signer's own steps
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)  # noqa: SLF001
    return request


@pytest.mark.parametrize("key", [USER, SESSION], ids=["user", "session"])
def test_a_presigned_request_reaches_moto_signed_in_its_headers_by_the_same_key(key: tuple[str, ...]) -> None:
    client, inner, _ = guarded()
    assert send(client, presigned(key), b"").status_code == 200
    environ = inner.environs[-1]
    # moto routes by the Authorization header's scope and checks header signatures only.
    assert environ["HTTP_AUTHORIZATION"].startswith(
        f"AWS4-HMAC-SHA256 Credential={key[0]}/20261201/us-east-1/sts/"
    )
    assert environ["QUERY_STRING"] == "Action=GetCallerIdentity&Version=2011-06-15"
    assert environ["RAW_URI"].endswith("/?Action=GetCallerIdentity&Version=2011-06-15")
    assert environ.get("HTTP_X_AMZ_SECURITY_TOKEN") == (key[2] if len(key) > 2 else None)
    # The header signature is the key's own: the guard's verifier, which recomputes it, accepts it.
    signature, found = verify(environ, b"", KEYS.get, NOW + datetime.timedelta(seconds=30))
    assert (signature.key_id, signature.presigned, found) == (key[0], False, KEYS[key[0]])
    # And what is handed on is still checked: a presigned misspelled or public operation is not.
    assert refused(send(client, presigned(key, "Action=getCallerIdentity"), b""), "AccessDenied")
    assert len(inner.bodies) == 1


def test_an_action_inside_a_gzip_body_is_read_as_moto_reads_it() -> None:
    client, inner, _ = guarded()
    hidden = gzip.compress(b"Action=createAccessKey&UserName=admin")
    request = signed("iam", hidden, USER, {"Content-Encoding": "gzip"}, path="/?Action=ListUsers")
    assert refused(send(client, request), "AccessDenied")
    bomb = gzip.compress(b"A" * (MAX_BODY_BYTES + 1))
    assert refused(send(client, signed("iam", bomb, USER, {"Content-Encoding": "gzip"})), "AccessDenied")
    garbage = signed("iam", b"not gzip", USER, {"Content-Encoding": "gzip"}, path="/?Action=ListUsers")
    assert refused(send(client, garbage), "AccessDenied")
    assert inner.bodies == []
    plain = gzip.compress(BODY)
    assert send(client, signed("iam", plain, USER, {"Content-Encoding": "gzip"})).status_code == 200
    assert inner.bodies == [plain]


@pytest.mark.parametrize(
    ("service", "body", "query"),
    [
        # moto checks the form's RoleName, then its parser acts on the query's.
        ("iam", b"Action=PutRolePolicy&Version=2010-05-08&RoleName=sandbox", "RoleName=admin"),
        (
            "iam",
            b"Action=PutRolePolicy&Version=2010-05-08&RoleName=sandbox",
            "Action=PutRolePolicy&RoleName=admin",
        ),
        ("sts", b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::1:role/a", "RoleArn=x"),
        ("ec2", b"Action=DescribeInstances&Version=2016-11-15", "InstanceId.1=i-1"),
        ("iam", b"Action=ListUsers&Version=2010-05-08", "&x"),
    ],
    ids=["iam", "iam-both-actions", "sts", "ec2", "bare-name"],
)
def test_parameters_in_both_the_query_and_the_body_never_reach_moto(
    service: str, body: bytes, query: str
) -> None:
    client, inner, _ = guarded()
    for headers in (
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        {"Content-Type": "text/plain"},
    ):
        assert refused(send(client, signed(service, body, USER, headers, path="/?" + query)), DENIED[service])
    zipped = gzip.compress(body)
    request = signed(service, zipped, USER, {"Content-Encoding": "gzip"}, path="/?" + query)
    assert refused(send(client, request), DENIED[service])
    assert inner.bodies == []
    # In one place or the other, the same call is handed on.
    assert send(client, signed(service, body, USER)).status_code == 200
    assert send(client, signed(service, b"", USER, path="/?" + body.decode())).status_code == 200
    assert inner.bodies == [body, b""]


def test_an_action_header_beside_a_gzip_body_is_read_as_moto_reads_it() -> None:
    client, inner, _ = guarded()
    hidden = gzip.compress(b"Action=createAccessKey&UserName=admin")
    request = signed("iam", hidden, USER, {"Content-Encoding": "gzip", "Action": "ListUsers"})
    assert refused(send(client, request), "AccessDenied")
    assert inner.bodies == []


@pytest.mark.parametrize(
    ("method", "path", "host"),
    [
        # moto checks s3:PutBucketAcl and runs PutBucketPolicy; checks s3:CreateBucket, runs encryption.
        ("PUT", "/bucket?policy=&acl=", "localhost"),
        ("PUT", "/bucket?encryption=", "localhost"),
        ("PUT", "/?policy=&acl=", "bucket.s3.amazonaws.com"),
        ("GET", "/bucket/key", "localhost"),
        ("GET", "/", "localhost"),
    ],
)
def test_s3_whose_checked_action_is_not_the_one_moto_runs_never_reaches_it(
    method: str, path: str, host: str
) -> None:
    client, inner, _ = guarded()
    request = AWSRequest(method=method, url=f"http://localhost{path}", data=b"{}" if method == "PUT" else b"")
    request.headers["Host"] = host
    signer = S3SigV4Auth(Credentials(*USER), "s3", "us-east-1")
    request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)  # noqa: SLF001 - the signer's own steps
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)  # noqa: SLF001
    url = request.url.split("localhost", 1)[1]
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    response = client.open(
        url.partition("?")[0],
        method=method,
        query_string=url.partition("?")[2],
        headers=headers,
        data=request.body,
    )
    assert refused(response, "AccessDenied"), response.get_data()
    assert inner.bodies == []
