"""POST /oidc/credentials: a CI job's OIDC token, verified against a real issuer on loopback (its
discovery document and JWKS fetched over HTTP), decided by a grant in the table, vended by STS (moto).

Every attack class is a token forged here; each asserts no credentials, a clear 401/403, no STS call
and at most the bounded number of JWKS fetches."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stsvend.local.oidc_issuer import LocalIssuer
from tests.functional.conftest import READ_ONLY, Invocation, Stack
from tests.functional.oidc_helpers import (
    OWNER_ID,
    REPO_ID,
    call,
    github,  # noqa: F401 - fixture
    grant_entry,
    issuer_entry,
    store,
)

JWKS = "/.well-known/jwks"
DISCOVERY = "/.well-known/openid-configuration"


def _oidc_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if getattr(r, "route", None) == "oidc/credentials"]


def _denied(answer: Invocation, stack: Stack, status: int) -> None:
    assert answer.status == status, answer.body.get("Message", "credentials were vended")
    assert "AccessKeyId" not in answer.body and "SecretAccessKey" not in answer.body
    assert answer.body["Code"] == ("NotAuthenticated" if status == 401 else "CallerNotAllowed")
    assert stack.sent == []
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.fixture
def trusted(stack: Stack, github: LocalIssuer) -> LocalIssuer:  # noqa: F811
    issuer = issuer_entry(github, required_claims={"repository_owner_id": OWNER_ID})
    store(stack, issuer, grant_entry(issuer))
    return github


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# --- the way in ------------------------------------------------------------------------------------


def test_a_github_job_on_its_main_branch_gets_credentials_tagged_with_its_run(
    stack: Stack, trusted: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = trusted.token()

    answer = call(stack, token, {"role_arn": READ_ONLY, "duration_seconds": 900})

    assert answer.status == 200, answer.body
    (sent,) = stack.sent
    assert sent["SourceIdentity"] == f"gh-{REPO_ID}-7000000001-1"
    assert sent["RoleSessionName"] == f"gh-{REPO_ID}-7000000001-1"
    assert answer.body["SourceIdentity"] == sent["SourceIdentity"]
    tags = {t["Key"]: t["Value"] for t in sent["Tags"]}
    assert tags["stsvend:caller"] == "oidc:gha:octo-read"
    assert tags["ci:repository"] == "octo-org/octo-repo"
    assert tags["ci:repository-id"] == REPO_ID
    assert tags["ci:ref"] == "refs/heads/main"
    assert tags["ci:run-id"] == "7000000001"
    assert tags["ci:event"] == "push"
    assert sent["TransitiveTagKeys"] == ["stsvend:caller"]
    assert sent["DurationSeconds"] == 900
    assert "Policy" in sent
    # Discovery once, JWKS once.
    assert trusted.fetches == [DISCOVERY, JWKS]
    (record,) = _oidc_records(caplog)
    assert record["event"] == "credentials.vended"
    assert record["oidc_claims"]["repository_id"] == REPO_ID
    assert record["access_key_id"] == answer.body["AccessKeyId"]
    rendered = json.dumps(record, default=str)
    assert token not in rendered and token.split(".")[2] not in rendered
    assert answer.body["SecretAccessKey"] not in rendered


def test_keys_are_fetched_once_for_many_vends(stack: Stack, trusted: LocalIssuer) -> None:
    for _ in range(5):
        assert call(stack, trusted.token()).status == 200
    assert trusted.fetches == [DISCOVERY, JWKS]


def test_a_request_session_name_follows_the_run_identity(stack: Stack, trusted: LocalIssuer) -> None:
    answer = call(stack, trusted.token(), {"role_arn": READ_ONLY, "session_name": "deploy-step"})
    assert answer.status == 200
    assert stack.sent[0]["RoleSessionName"] == f"gh-{REPO_ID}-7000000001-1-deploy-step"
    assert stack.sent[0]["SourceIdentity"] == f"gh-{REPO_ID}-7000000001-1"


# --- tokens that are not accepted (401) ------------------------------------------------------------


def test_no_token_or_another_scheme_is_401(stack: Stack, trusted: LocalIssuer) -> None:
    _denied(call(stack, None), stack, 401)
    _denied(call(stack, trusted.token(), scheme="Basic"), stack, 401)
    _denied(call(stack, "not-a-jwt"), stack, 401)
    assert trusted.fetches == []


def test_alg_none_is_refused_without_a_fetch(stack: Stack, trusted: LocalIssuer) -> None:
    claims = trusted.claims()
    unsigned = f"{_segment({'alg': 'none', 'kid': trusted.kid})}.{_segment(claims)}."
    _denied(call(stack, unsigned), stack, 401)
    # The same with something in the signature place.
    _denied(call(stack, unsigned + "AAAA"), stack, 401)
    assert trusted.fetches == []


def test_hmac_keyed_with_the_issuers_public_key_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    public_pem = trusted.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _hmac_token(trusted.claims(), public_pem, trusted.kid)
    answer = call(stack, forged)
    _denied(answer, stack, 401)
    assert "algorithm" in answer.body["Message"]
    assert trusted.fetches == []


def _hmac_token(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    import hashlib
    import hmac

    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_an_unknown_kid_flood_costs_one_jwks_fetch(stack: Stack, trusted: LocalIssuer) -> None:
    for _ in range(40):
        kid = {"kid": uuid.uuid4().hex}
        forged = jwt.encode(trusted.claims(), trusted.key, algorithm="RS256", headers=kid)
        answer = call(stack, forged)
        _denied(answer, stack, 401)
        assert "key id" in answer.body["Message"]
    assert trusted.fetches == [DISCOVERY, JWKS]
    # The real key still works, from the cache.
    assert call(stack, trusted.token()).status == 200
    assert trusted.fetches == [DISCOVERY, JWKS]


def test_a_key_added_later_is_found_by_the_one_rate_limited_refetch(
    stack: Stack, trusted: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert call(stack, trusted.token()).status == 200
    stack.sent.clear()
    rotated = LocalIssuer("github-actions")
    trusted.extra_keys.append({**rotated.public_jwk()})
    token = rotated.sign(trusted.claims(), {"kid": rotated.kid})
    # Within the interval: no refetch, the key is unknown.
    _denied(call(stack, token), stack, 401)
    assert trusted.fetches.count(JWKS) == 1
    # After it, one refetch finds the rotated key.
    import chalicelib.oidc.verify as verify

    real = verify.time.monotonic
    monkeypatch.setattr(stack.service.oidc.verifier, "_monotonic", lambda: real() + 61)
    assert call(stack, token).status == 200
    assert trusted.fetches.count(JWKS) == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "sts.amazonaws.com"},
        {"aud": ["someone-else", "another"]},
        {"aud": None},
    ],
    ids=["wrong-aud", "wrong-aud-list", "missing-aud"],
)
def test_a_token_for_another_audience_is_401(stack: Stack, trusted: LocalIssuer, overrides: Any) -> None:
    answer = call(stack, trusted.sign(trusted.claims(**overrides)))
    _denied(answer, stack, 401)
    assert "aud" in answer.body["Message"]


# Times are offsets from the moment the test runs (a suite can take many minutes to reach it).
@pytest.mark.parametrize(
    ("offsets", "words"),
    [
        ({"exp": -120}, "expired"),
        ({"exp": None}, "exp"),
        ({"nbf": 600, "exp": 900}, "not valid yet"),
        ({"iat": 600, "exp": 900}, "not valid yet"),
        ({"iat": None}, "iat"),
        ({"iat": 0, "exp": 48 * 3600}, "lives longer"),
        ({"iat": -7200, "nbf": None, "exp": 300}, "older"),
        ({"iss": "https://token.actions.githubusercontent.com"}, "issuer"),
    ],
    ids=["expired", "no-exp", "future-nbf", "future-iat", "no-iat", "too-long", "too-old", "other-iss"],
)
def test_time_and_issuer_claims_are_checked(
    stack: Stack, trusted: LocalIssuer, offsets: dict[str, Any], words: str
) -> None:
    now = int(time.time())
    overrides = {k: now + v if isinstance(v, int) else v for k, v in offsets.items()}
    answer = call(stack, trusted.sign(trusted.claims(**overrides)))
    _denied(answer, stack, 401)
    assert words in answer.body["Message"]


def test_an_unknown_issuer_costs_no_fetch(stack: Stack, trusted: LocalIssuer) -> None:
    with LocalIssuer("github-actions") as stranger:
        answer = call(stack, stranger.token())
        _denied(answer, stack, 401)
        assert stranger.fetches == [] and trusted.fetches == []


def test_an_oversized_token_is_refused_before_it_is_parsed(stack: Stack, trusted: LocalIssuer) -> None:
    answer = call(stack, trusted.token(padding="x" * 9000))
    _denied(answer, stack, 401)
    assert "8192 bytes" in answer.body["Message"]
    assert trusted.fetches == []


@pytest.mark.parametrize("parameter", ["jku", "x5u"])
def test_jku_and_x5u_to_the_callers_host_are_never_followed(
    stack: Stack, trusted: LocalIssuer, parameter: str
) -> None:
    with LocalIssuer("github-actions") as attacker:
        # Signed with the attacker's key, pointing at the attacker's JWKS, claiming the trusted iss.
        forged = attacker.sign(trusted.claims(), {parameter: attacker.url + JWKS, "kid": attacker.kid})
        answer = call(stack, forged)
        _denied(answer, stack, 401)
        assert parameter in answer.body["Message"]
        assert attacker.fetches == []
    assert trusted.fetches == []


def test_an_embedded_jwk_is_never_used(stack: Stack, trusted: LocalIssuer) -> None:
    attacker = LocalIssuer("github-actions")
    forged = attacker.sign(trusted.claims(), {"jwk": attacker.public_jwk(), "kid": trusted.kid})
    _denied(call(stack, forged), stack, 401)


def test_crit_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    token = trusted.sign(trusted.claims(), {"crit": ["exp"]})
    answer = call(stack, token)
    _denied(answer, stack, 401)
    assert "critical" in answer.body["Message"]


def test_a_signature_by_another_key_under_the_trusted_kid_is_refused(
    stack: Stack, trusted: LocalIssuer
) -> None:
    attacker = LocalIssuer("github-actions")
    forged = attacker.sign(trusted.claims(), {"kid": trusted.kid})
    answer = call(stack, forged)
    _denied(answer, stack, 401)
    assert "signature" in answer.body["Message"]


def test_the_key_type_is_pinned_to_the_algorithm(stack: Stack, trusted: LocalIssuer) -> None:
    # An EC signature naming the issuer's RSA key: refused by type, whatever the issuer allows.
    pinned = {"repository_owner_id": OWNER_ID}
    store(stack, issuer_entry(trusted, algorithms=["RS256", "ES256"], required_claims=pinned))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(trusted.claims(), ec_key, algorithm="ES256", headers={"kid": trusted.kid})
    answer = call(stack, forged)
    _denied(answer, stack, 401)
    assert "RSA key, not EC" in answer.body["Message"]


def test_an_algorithm_the_issuer_does_not_list_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    token = jwt.encode(trusted.claims(), trusted.key, algorithm="PS256", headers={"kid": trusted.kid})
    answer = call(stack, token)
    _denied(answer, stack, 401)
    assert trusted.fetches == []


def test_a_repeated_claim_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    claims = json.dumps(trusted.claims())[:-1] + ', "repository_id": "1"}'
    header = _segment({"alg": "RS256", "typ": "JWT", "kid": trusted.kid})
    payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    _denied(call(stack, f"{header}.{payload}.AAAA"), stack, 401)


# --- verified tokens no grant admits (403) --------------------------------------------------------


def test_a_recycled_repository_name_with_a_new_id_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    # Someone deleted octo-org/octo-repo and re-created it (or took over the name): a new id.
    claims = {"repository_id": REPO_ID, "repository": "octo-org/octo-repo"}
    store(stack, grant_entry(issuer_entry(trusted), claims=claims))
    answer = call(stack, trusted.token(repository_id="400000999"))
    _denied(answer, stack, 403)


def test_a_foreign_organisation_on_the_pinned_issuer_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    answer = call(stack, trusted.token(repository_owner_id="31337", repository_owner="evil-org"))
    _denied(answer, stack, 403)


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_name": "pull_request", "ref": "refs/pull/7/merge"},
        {"event_name": "pull_request_target"},
        {"event_name": "pull_request_review"},
    ],
    ids=["pull_request", "pull_request_target", "pull_request_review"],
)
def test_a_pull_request_run_against_a_branch_only_grant_is_refused(
    stack: Stack, trusted: LocalIssuer, overrides: dict[str, Any]
) -> None:
    store(stack, grant_entry(issuer_entry(trusted), claims={"repository_id": REPO_ID}))
    answer = call(stack, trusted.token(**overrides))
    _denied(answer, stack, 403)
    assert "pull-request" in answer.body["Message"]


def test_a_grant_that_admits_pull_requests_says_so(stack: Stack, trusted: LocalIssuer) -> None:
    store(stack, grant_entry(issuer_entry(trusted), claims={"repository_id": REPO_ID}, pull_requests=True))
    assert call(stack, trusted.token(event_name="pull_request", ref="refs/pull/7/merge")).status == 200


@pytest.mark.parametrize(
    "ref", ["refs/heads/main\n", "refs/heads/main\x00", "refs/heads/main ", "refs/heads/mai\u0301n"]
)
def test_a_condition_claim_with_control_or_other_characters_matches_nothing(
    stack: Stack, trusted: LocalIssuer, ref: str
) -> None:
    _denied(call(stack, trusted.token(ref=ref)), stack, 403)


def test_tag_claims_that_do_not_fit_sts_are_dropped_and_audited_never_altered(
    stack: Stack, trusted: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    long_ref = "o/r/.github/workflows/" + "w" * 300 + ".yml@main"
    token = trusted.token(actor="mallory\r\nx", workflow_ref=long_ref)
    answer = call(stack, token)
    assert answer.status == 200
    tags = {t["Key"]: t["Value"] for t in stack.sent[0]["Tags"]}
    assert "ci:actor" not in tags and "ci:workflow" not in tags
    assert tags["ci:repository"] == "octo-org/octo-repo"
    (record,) = _oidc_records(caplog)
    dropped = {d["tag"]: d["reason"] for d in record["dropped_claim_tags"]}
    assert dropped == {
        "ci:actor": "characters outside STS's tag charset",
        "ci:workflow": "over 256 characters",
    }


def test_equally_specific_grants_are_ambiguous_and_deny(stack: Stack, trusted: LocalIssuer) -> None:
    issuer = issuer_entry(trusted)
    store(stack, grant_entry(issuer, "by-ref", claims={"repository_id": REPO_ID, "ref": "refs/heads/main"}))
    store(stack, grant_entry(issuer, "by-env", claims={"repository_id": REPO_ID, "event_name": "push"}))
    _denied(call(stack, trusted.token()), stack, 403)


def test_the_most_specific_grant_decides(stack: Stack, trusted: LocalIssuer) -> None:
    issuer = issuer_entry(trusted)
    store(stack, grant_entry(issuer, "repo-wide", claims={"repository_id": REPO_ID}, enabled=False))
    # octo-read (repository_id + ref) is more specific than repo-wide, and enabled.
    assert call(stack, trusted.token()).status == 200
    stack.sent.clear()
    # On another branch only the disabled repo-wide grant matches.
    _denied(call(stack, trusted.token(ref="refs/heads/dev")), stack, 403)


def test_a_role_outside_the_grant_is_refused(stack: Stack, trusted: LocalIssuer) -> None:
    answer = call(stack, trusted.token(), {"role_arn": "arn:aws:iam::111111111111:role/admin"})
    assert answer.status == 403 and answer.body["Code"] == "RoleNotGranted"
    assert stack.sent == []


def test_a_stored_oidc_entry_that_does_not_parse_denies_its_issuers_callers(
    stack: Stack, trusted: LocalIssuer
) -> None:
    from chalicelib.grant_store import to_item
    from tests.functional.conftest import TABLE

    stack.ddb.put_item(
        TableName=TABLE,
        Item=to_item(
            {
                "account_id": "oidc",
                "principal": "grant:broken",
                "issuer": "gha",
                "roles": [],
                "claims": {"repository": "x"},
            }
        ),
    )
    _denied(call(stack, trusted.token()), stack, 403)


def test_every_oidc_decision_is_audited_once_without_the_token(
    stack: Stack, trusted: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cases = [
        (trusted.token(), 200, "credentials.vended", None),
        (trusted.token(aud="other"), 401, "credentials.denied", "NotAuthenticated"),
        (trusted.token(repository_id="1"), 403, "credentials.denied", "CallerNotAllowed"),
    ]
    for token, status, event, code in cases:
        caplog.clear()
        answer = call(stack, token)
        assert answer.status == status
        (record,) = _oidc_records(caplog)
        assert (record["event"], record.get("code")) == (event, code)
        assert record["request_id"] == answer.body["RequestId"]
        assert token.split(".")[2] not in json.dumps(record, default=str)
    # A failure nobody foresaw: 500, audited, nothing vended.
    caplog.clear()
    stack.service.oidc._clients = _ExplodingClients()
    answer = call(stack, trusted.token())
    assert answer.status == 500 and answer.body["Code"] == "InternalError"
    (record,) = _oidc_records(caplog)
    assert (record["event"], record["code"]) == ("credentials.denied", "InternalError")


class _ExplodingClients:
    def sts(self) -> Any:
        raise RuntimeError("boom")


def test_an_issuer_whose_keys_cannot_be_fetched_is_an_outage_retried_at_most_once_a_minute(
    stack: Stack,
    github: LocalIssuer,  # noqa: F811
) -> None:
    from stsvend.local.process import free_port

    closed = f"http://127.0.0.1:{free_port()}/jwks"  # nothing listens there
    issuer = issuer_entry(github, jwks_uri=closed, required_claims={"repository_owner_id": OWNER_ID})
    store(stack, issuer, grant_entry(issuer))
    for _ in range(3):
        answer = call(stack, github.token())
        assert answer.status == 503 and answer.body["Code"] == "ServiceUnavailable"
        assert answer.headers["Retry-After"] == "2"
    assert stack.service.oidc.verifier.fetches == 1
    assert stack.sent == []
