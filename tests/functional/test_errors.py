"""Each error code of docs/design.md §4, produced by the situation that defines it; never credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

import app as app_module
from chalicelib.grant_store import GrantStore
from tests.functional.conftest import (
    DEPLOYER,
    READ_ONLY,
    TABLE,
    Invocation,
    Stack,
    iam_identity,
    jenkins_grant,
)


def assert_error(answer: Invocation, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert answer.body["Code"] == code
    assert answer.body["Message"]
    assert answer.body["RequestId"]
    assert "AccessKeyId" not in answer.body and "SecretAccessKey" not in answer.body
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        json.dumps({"role_arn": DEPLOYER, "color": "red"}),
        json.dumps({"role_arn": "arn:aws:iam::222222222222:user/deployer"}),
        json.dumps({"role_arn": DEPLOYER, "duration_seconds": "900"}),
        json.dumps({"role_arn": DEPLOYER, "tags": {"aws:foo": "x"}}),
        json.dumps({"role_arn": DEPLOYER, "session_name": "has space"}),
        f'{{"role_arn": "{DEPLOYER}", "role_arn": "{READ_ONLY}"}}',
    ],
    ids=["json", "unknown-field", "bad-arn", "duration-type", "aws-tag", "session-name", "dup-key"],
)
def test_invalid_request(stack: Stack, body: str) -> None:
    stack.put_grant(jenkins_grant())
    assert_error(stack.vend(body), 400, "InvalidRequest")
    assert stack.sent == []


@pytest.mark.parametrize("duration", [899, 1801, -1, 10**12])
def test_duration_outside_grant(stack: Stack, duration: int) -> None:
    stack.put_grant(jenkins_grant())
    answer = stack.vend({"role_arn": READ_ONLY, "duration_seconds": duration})
    assert_error(answer, 400, "DurationNotAllowed")
    assert stack.sent == []


def test_payload_too_large(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())
    body = json.dumps({"role_arn": DEPLOYER, "session_name": "x" * 17000})
    assert_error(stack.vend(body), 413, "PayloadTooLarge")


@pytest.mark.parametrize(
    "identity",
    [{}, {"sourceIp": "10.0.0.1"}, {"userArn": "not-an-arn", "sourceIp": "10.0.0.1"}],
    ids=["no-identity", "no-user-arn", "garbage-arn"],
)
def test_not_authenticated(stack: Stack, identity: dict[str, Any]) -> None:
    stack.put_grant(jenkins_grant())
    for method, path in (("POST", "/credentials"), ("GET", "/roles"), ("GET", "/whoami")):
        answer = stack.invoke(method, path, {"role_arn": DEPLOYER}, identity=identity)
        assert_error(answer, 401, "NotAuthenticated")
    assert stack.sent == []


@pytest.mark.parametrize(
    "grant",
    [
        None,
        jenkins_grant(enabled=False),
        jenkins_grant(not_after="2020-01-01T00:00:00Z"),
        jenkins_grant(principal_id="AROARECREATEDROLE0001"),
        jenkins_grant(principal="arn:aws:iam::111111111111:role/jenkins-agent2"),
    ],
    ids=["no-grant", "disabled", "expired", "recreated-principal", "other-principal"],
)
def test_caller_not_allowed(stack: Stack, grant: dict[str, Any] | None) -> None:
    if grant is not None:
        stack.put_grant(grant)
    assert_error(stack.vend({"role_arn": DEPLOYER}), 403, "CallerNotAllowed")
    assert stack.sent == []


def test_principal_id_pin_admits_the_original_principal(stack: Stack) -> None:
    stack.put_grant(jenkins_grant(principal_id="AROAJENKINSAGENT0001"))
    assert stack.vend({"role_arn": READ_ONLY}).status == 200


def test_source_not_allowed(stack: Stack) -> None:
    stack.put_grant(jenkins_grant(source_cidrs=["192.168.0.0/16"]))
    answer = stack.vend({"role_arn": DEPLOYER}, iam_identity(source_ip="10.1.2.3"))
    assert_error(answer, 403, "SourceNotAllowed")
    allowed = stack.vend({"role_arn": DEPLOYER}, iam_identity(source_ip="192.168.4.5"))
    assert allowed.status == 200


def test_role_not_granted(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())
    answer = stack.vend({"role_arn": "arn:aws:iam::222222222222:role/admin"})
    assert_error(answer, 403, "RoleNotGranted")
    # A path does not make a different role the same one.
    answer = stack.vend({"role_arn": "arn:aws:iam::222222222222:role/x/deployer"})
    assert_error(answer, 403, "RoleNotGranted")
    assert stack.sent == []


@pytest.mark.parametrize(
    "tags",
    [
        {"team": "x"},
        {"stsvend:caller": "arn:aws:iam::111111111111:role/admin"},
        {"STSVEND:Request-Id": "forged"},
    ],
    ids=["not-in-grant", "collides", "collides-any-case"],
)
def test_tag_not_allowed(stack: Stack, tags: dict[str, str]) -> None:
    stack.put_grant(jenkins_grant())
    assert_error(stack.vend({"role_arn": DEPLOYER, "tags": tags}), 403, "TagNotAllowed")
    assert stack.sent == []


def _stub_sts_error(stack: Stack, code: str, status: int, times: int = 1) -> Stubber:
    stubber = Stubber(stack.clients.sts())
    for _ in range(times):
        stubber.add_client_error(
            "assume_role", service_error_code=code, service_message="no", http_status_code=status
        )
    stubber.activate()
    return stubber


@pytest.mark.parametrize(
    ("sts_code", "status", "expected_status", "expected_code"),
    [
        ("AccessDenied", 403, 502, "AssumeRoleDenied"),
        ("RegionDisabledException", 403, 502, "AssumeRoleDenied"),
        ("PackedPolicyTooLarge", 400, 400, "PolicyTooLarge"),
        ("Throttling", 400, 503, "ServiceUnavailable"),
        ("InternalFailure", 500, 503, "ServiceUnavailable"),
    ],
)
def test_sts_failures_are_translated(
    stack: Stack, sts_code: str, status: int, expected_status: int, expected_code: str
) -> None:
    stack.put_grant(jenkins_grant())
    stubber = _stub_sts_error(stack, sts_code, status)
    answer = stack.vend({"role_arn": DEPLOYER})
    stubber.assert_no_pending_responses()
    assert_error(answer, expected_status, expected_code)
    if expected_code == "ServiceUnavailable":
        assert answer.headers["Retry-After"]


def test_assume_role_denied_says_what_to_check(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())
    _stub_sts_error(stack, "AccessDenied", 403)
    message = stack.vend({"role_arn": DEPLOYER}).body["Message"]
    assert DEPLOYER in message
    for needed in ("trust policy", "sts:TagSession", "sts:SetSourceIdentity", "external id"):
        assert needed in message


def test_dynamodb_unreachable_is_unavailable(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.put_grant(jenkins_grant())
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    stack.serve()
    answer = stack.vend({"role_arn": DEPLOYER})
    assert_error(answer, 503, "ServiceUnavailable")
    assert answer.headers["Retry-After"]


def test_missing_table_fails_closed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STSVEND_GRANTS_TABLE", "no-such-table")
    stack.serve()
    assert_error(stack.vend({"role_arn": DEPLOYER}), 503, "ServiceUnavailable")


def test_missing_setting_fails_closed_without_detail(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STSVEND_GRANTS_TABLE")
    app_module.use_service(None)
    answer = stack.vend({"role_arn": DEPLOYER})
    assert_error(answer, 500, "InternalError")
    assert "STSVEND" not in answer.body["Message"]
    # A request the framework refuses (content type) cannot be audited either: the same answer.
    refused = stack.invoke(
        "POST", "/credentials", {"role_arn": DEPLOYER}, iam_identity(), {"Content-Type": "text/plain"}
    )
    assert_error(refused, 500, "InternalError")
    assert "STSVEND" not in refused.body["Message"]


def test_unexpected_failure_is_an_internal_error_without_a_stack_trace(stack: Stack) -> None:
    stack.put_grant(jenkins_grant())

    class Exploding(GrantStore):
        def for_account(self, account_id: str) -> Any:
            raise RuntimeError("boom /secret/path")

    stack.serve(grants=Exploding(lambda: None, TABLE, 0))
    answer = stack.vend({"role_arn": DEPLOYER})
    assert_error(answer, 500, "InternalError")
    assert "boom" not in json.dumps(answer.body) and "Traceback" not in json.dumps(answer.body)
