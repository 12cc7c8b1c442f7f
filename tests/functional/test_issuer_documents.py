"""The identity-provider mode through the app: the issuer's public documents (served without IAM
auth, cacheable, audited, absent when no issuer is set) and a vend in web-identity mode, which signs
a token with the KMS key and sends AssumeRoleWithWebIdentity with the decided parameters. The
emulator here checks no token: tests/e2e/test_web_identity.py shows the refusals."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import boto3
import pytest

from chalicelib.audit import PUBLISHED
from tests.functional.conftest import DEPLOYER, REGION, Stack, iam_identity, jenkins_grant

ISSUER = "https://stsvend.example/api"
LONG_ROLE = "arn:aws:iam::222222222222:role/long-jobs"


@pytest.fixture
def issuer_key(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    kms = boto3.client("kms", region_name=REGION, endpoint_url=stack.url)
    arn = str(kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])
    monkeypatch.setenv("STSVEND_ISSUER_URL", ISSUER)
    monkeypatch.setenv("STSVEND_ISSUER_KEYS", arn)
    return arn


def _published(stack: Stack, path: str, caplog: pytest.LogCaptureFixture) -> tuple[Any, dict[str, Any]]:
    caplog.clear()
    caplog.set_level(logging.INFO)
    answer = stack.invoke("GET", path, None, identity={})
    (record,) = [r for r in caplog.records if getattr(r, "event", None)]
    return answer, record.__dict__


def test_the_documents_are_public_cacheable_and_audited(
    stack: Stack, issuer_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    stack.serve()
    discovery, audit = _published(stack, "/.well-known/openid-configuration", caplog)
    assert discovery.status == 200 and discovery.headers["Cache-Control"] == "public, max-age=300"
    assert discovery.body["issuer"] == ISSUER
    assert discovery.body["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert discovery.body["id_token_signing_alg_values_supported"] == ["RS256"]
    assert (audit["event"], audit["document"], audit["status"]) == (PUBLISHED, "openid-configuration", 200)
    jwks, audit = _published(stack, "/.well-known/jwks.json", caplog)
    (key,) = jwks.body["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig") and key["kid"]
    assert not {"d", "p", "q"} & set(key)  # public members only
    assert audit["document"] == "jwks" and audit["source_ip"] is None


def test_without_an_issuer_the_documents_are_not_found(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.serve()
    answer, audit = _published(stack, "/.well-known/jwks.json", caplog)
    assert answer.status == 404 and answer.body["Code"] == "NotFound"
    assert audit["status"] == 404


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_web_identity_grant_is_vended_with_a_signed_token(stack: Stack, issuer_key: str) -> None:
    grant = jenkins_grant()
    grant["roles"].append({"role_arn": LONG_ROLE, "max_duration_seconds": 43200, "mode": "web-identity"})
    stack.put_grant(grant)
    service = stack.serve()
    sent: list[dict[str, Any]] = []
    stack.clients.sts().meta.events.register(
        "provide-client-params.sts.AssumeRoleWithWebIdentity", lambda params, **_: sent.append(dict(params))
    )
    answer = stack.vend({"role_arn": LONG_ROLE, "tags": {"build-id": "b-42"}})
    assert answer.status == 200, answer.body
    (call,) = sent
    assert call["DurationSeconds"] == 43200 and call["RoleArn"] == LONG_ROLE
    assert not {"Tags", "TransitiveTagKeys", "SourceIdentity", "ExternalId"} & set(call)
    claims = _claims(call["WebIdentityToken"])
    assert claims["sub"] == f"{LONG_ROLE}|{grant['principal']}" and claims["iss"] == ISSUER
    assert claims["https://aws.amazon.com/tags"]["principal_tags"]["build-id"] == ["b-42"]
    assert claims["https://aws.amazon.com/source_identity"] == answer.body["SourceIdentity"]
    assert service.issuer is not None
    assert stack.sent == []  # no AssumeRole: the role in assume-role mode is untouched
    chained = stack.vend({"role_arn": DEPLOYER}, iam_identity())
    assert chained.status == 200 and len(stack.sent) == 1 and len(sent) == 1


def test_a_web_identity_grant_without_an_issuer_vends_nothing(stack: Stack) -> None:
    grant = jenkins_grant()
    grant["roles"].append({"role_arn": LONG_ROLE, "mode": "web-identity"})
    stack.put_grant(grant)
    stack.serve()
    answer = stack.vend({"role_arn": LONG_ROLE})
    assert answer.status == 502 and "no issuer" in answer.body["Message"]
