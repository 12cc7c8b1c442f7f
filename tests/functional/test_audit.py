"""One structured audit line and one metric per credentials decision; never a secret (DESIGN.md §5)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.functional.conftest import DEPLOYER, Stack, iam_identity, jenkins_grant


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "").startswith("credentials.")]


def test_a_vend_writes_one_audit_line_with_the_join_key(
    stack: Stack, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.put_grant(jenkins_grant())
    caplog.set_level(logging.INFO)

    answer = stack.vend({"role_arn": DEPLOYER, "duration_seconds": 900, "tags": {"build-id": "9"}})

    assert answer.status == 200
    (record,) = audit_records(caplog)
    fields = record.__dict__
    assert fields["event"] == "credentials.vended"
    assert fields["request_id"] == answer.body["RequestId"]
    assert fields["access_key_id"] == answer.body["AccessKeyId"]
    assert fields["caller_arn"] == iam_identity()["userArn"]
    assert fields["caller_principal"] == "arn:aws:iam::111111111111:role/jenkins-agent"
    assert fields["caller_account"] == "111111111111"
    assert fields["source_ip"] == "10.1.2.3"
    assert fields["user_agent"] == "pytest"
    assert fields["role_arn"] == DEPLOYER
    assert fields["role_session_name"] == answer.body["RoleSessionName"]
    assert fields["source_identity"] == "jenkins-agent"
    assert fields["duration_seconds"] == 900
    assert fields["expiration"] == answer.body["Expiration"]
    assert fields["tags"]["build-id"] == "9"
    assert fields["tags"]["stsvend:request-id"] == answer.body["RequestId"]
    rendered = json.dumps({k: str(v) for k, v in fields.items()})
    assert answer.body["SecretAccessKey"] not in rendered
    assert answer.body["SessionToken"] not in rendered
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in metrics] == ["CredentialsVended"]


def test_a_denial_writes_one_audit_line_with_its_code(
    stack: Stack, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.put_grant(jenkins_grant())
    caplog.set_level(logging.INFO)

    answer = stack.vend({"role_arn": "arn:aws:iam::222222222222:role/admin"})

    assert answer.status == 403
    (record,) = audit_records(caplog)
    assert record.__dict__["event"] == "credentials.denied"
    assert record.__dict__["code"] == "RoleNotGranted"
    assert record.__dict__["request_id"] == answer.body["RequestId"]
    assert record.__dict__["role_arn"] == "arn:aws:iam::222222222222:role/admin"
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (metric,) = metrics
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "CredentialsDenied"
    assert metric["Code"] == "RoleNotGranted"


def test_an_unauthenticated_request_is_audited_as_denied(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack.invoke("POST", "/credentials", {"role_arn": DEPLOYER}, identity={})
    (record,) = audit_records(caplog)
    assert record.__dict__["code"] == "NotAuthenticated"
    assert record.__dict__["caller_arn"] is None
