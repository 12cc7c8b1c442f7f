"""One structured audit line per decision on every route, one metric per credentials decision; never
a secret (docs/design.md §5)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

import app as app_module
from chalicelib.grant_store import GrantStore
from tests.functional.conftest import DEPLOYER, TABLE, Stack, iam_identity, jenkins_grant


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


# Every route, and a request per decision it can make: (identity, grant stored, headers) ->
# (status, event). A route added without its cases fails the walk below.
ROUTE_BODIES: dict[tuple[str, str], Any] = {
    ("/credentials", "POST"): {"role_arn": DEPLOYER},
    ("/roles", "GET"): None,
    ("/whoami", "GET"): None,
    ("/oidc/credentials", "POST"): {"role_arn": DEPLOYER},
    ("/.well-known/openid-configuration", "GET"): None,
    ("/.well-known/jwks.json", "GET"): None,
}
OUTCOMES: dict[tuple[str, str], dict[str, tuple[int, str, str | None]]] = {
    ("/credentials", "POST"): {
        "granted": (200, "credentials.vended", None),
        "no grant": (403, "credentials.denied", "CallerNotAllowed"),
        "unauthenticated": (401, "credentials.denied", "NotAuthenticated"),
        "rejected by the framework": (400, "credentials.denied", "InvalidRequest"),
        "unexpected failure": (500, "credentials.denied", "InternalError"),
    },
    ("/roles", "GET"): {
        "granted": (200, "roles.listed", None),
        "no grant": (403, "roles.denied", "CallerNotAllowed"),
        "unauthenticated": (401, "roles.denied", "NotAuthenticated"),
        "rejected by the framework": (400, "roles.denied", "InvalidRequest"),
        "unexpected failure": (500, "roles.denied", "InternalError"),
    },
    ("/whoami", "GET"): {
        "granted": (200, "whoami.answered", None),
        "no grant": (200, "whoami.answered", None),  # whoami needs no grant
        "unauthenticated": (401, "whoami.denied", "NotAuthenticated"),
        "rejected by the framework": (400, "whoami.denied", "InvalidRequest"),
        "unexpected failure": (500, "whoami.denied", "InternalError"),
    },
    # No IAM identity here: its token decisions (vended, 401, 403, 500) are walked in
    # tests/functional/test_oidc_route.py, with tokens from a real issuer.
    ("/oidc/credentials", "POST"): {
        "unauthenticated": (401, "credentials.denied", "NotAuthenticated"),
        "rejected by the framework": (400, "credentials.denied", "InvalidRequest"),
    },
    # The issuer's public documents decide nothing for a caller: each request is its document's
    # `issuer.published` line, with the status answered (tests/functional/test_issuer_documents.py
    # walks the documents served).
    ("/.well-known/openid-configuration", "GET"): {
        "rejected by the framework": (400, "issuer.published", None),
    },
    ("/.well-known/jwks.json", "GET"): {
        "rejected by the framework": (400, "issuer.published", None),
    },
}


def every_audit_record(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None)]


def test_every_decision_on_every_route_is_audited_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    routes = {(path, method) for path, methods in app_module.app.routes.items() for method in methods}
    assert routes == set(OUTCOMES), "a route without audit cases"
    stack.put_grant(jenkins_grant())
    stranger = iam_identity(
        "arn:aws:sts::111111111111:assumed-role/stranger/sess", "AROASTRANGER00000001:sess"
    )
    for (path, method), outcomes in OUTCOMES.items():
        for situation, (status, event, code) in outcomes.items():
            if situation == "unexpected failure":
                stack.serve(grants=_Exploding(lambda: None, TABLE, 0))
                identity = iam_identity()
                if path == "/whoami":  # whoami reads no grant: make the caller's ARN fail instead
                    identity = {**identity, "userArn": _Unprintable()}
            else:
                stack.serve()
                identity = {"granted": iam_identity(), "no grant": stranger}.get(situation, {})
                if situation == "rejected by the framework":
                    identity = iam_identity()
            headers = {"Content-Type": "text/plain"} if situation == "rejected by the framework" else None
            caplog.clear()
            caplog.set_level(logging.INFO)
            answer = stack.invoke(method, path, ROUTE_BODIES[(path, method)], identity, headers)
            where = f"{method} {path} {situation}"
            assert answer.status == status, (where, answer.body)
            records = every_audit_record(caplog)
            assert len(records) == 1, (where, [r.__dict__.get("event") for r in records])
            fields = records[0].__dict__
            assert fields["event"] == event, where
            assert fields["request_id"] == answer.body["RequestId"], where
            assert fields.get("code") == code, where
            if event == "issuer.published":
                assert fields["status"] == status, where


class _Exploding(GrantStore):
    def for_account(self, account_id: str) -> Any:
        raise RuntimeError("the table blew up")


class _Unprintable(str):
    """A userArn whose use fails unexpectedly, as a defect in identity parsing would."""

    def __bool__(self) -> bool:
        raise RuntimeError("identity parsing blew up")


def test_a_broken_grant_denies_like_no_grant_and_the_audit_line_names_the_problem(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    nothing = stack.vend({"role_arn": DEPLOYER})
    broken = jenkins_grant(roles=[{"role_arn": DEPLOYER, "max_duration_seconds": 7200}])
    stack.put_grant(broken)
    stack.serve()  # a fresh grant cache
    caplog.clear()

    answer = stack.vend({"role_arn": DEPLOYER})

    assert answer.status == nothing.status == 403
    assert answer.body["Code"] == nothing.body["Code"] == "CallerNotAllowed"
    assert answer.body["Message"] == nothing.body["Message"]
    assert "max_duration_seconds" not in json.dumps(answer.body)
    (record,) = audit_records(caplog)
    detail = record.__dict__["detail"]
    assert "arn:aws:iam::111111111111:role/jenkins-agent" in detail
    assert "roles[0].max_duration_seconds" in detail
    assert stack.sent == []


def test_grants_differing_only_in_case_deny_and_the_audit_line_says_ambiguous(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.put_grant(jenkins_grant())
    stack.put_grant(jenkins_grant(principal="arn:aws:iam::111111111111:role/Jenkins-Agent"))
    caplog.set_level(logging.INFO)

    answer = stack.vend({"role_arn": DEPLOYER})

    assert (answer.status, answer.body["Code"]) == (403, "CallerNotAllowed")
    assert "Jenkins-Agent" not in json.dumps(answer.body)
    (record,) = audit_records(caplog)
    assert "ambiguous" in record.__dict__["detail"]
    assert "role/Jenkins-Agent" in record.__dict__["detail"]
    assert stack.sent == []


def test_the_request_event_is_never_logged_even_when_the_environment_asks(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # POWERTOOLS_LOGGER_LOG_EVENT=true (a debugging switch an operator may well flip) made every
    # request event a log line: the caller's session token, its Authorization and its proof with
    # them, on every route and in either identity mode.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    caplog.set_level(logging.DEBUG)
    token = "caller-session-token-must-never-be-logged"
    proof = base64.b64encode(b'{"proof-must-never-be-logged": 1}').decode()
    answer = stack.invoke(
        "GET", "/whoami", identity=iam_identity(),
        headers={"X-Amz-Security-Token": token, "X-Stsvend-Identity": proof},
    )
    assert answer.status == 200, answer.body
    logged = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged
    assert proof not in logged
    assert "/whoami" not in logged  # no event at all
