"""Issuer key rotation (docs/long-sessions.md "Rotating the issuer key"): the published JWKS through
each step of a rollover, and which tokens the local stack's checker (the guard's, which reads the
JWKS as STS does: through the discovery document, kept a while, read again for an unknown kid)
accepts at each step. Keys are the emulator's KMS keys; documents come from the app itself."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.config import Settings
from chalicelib.service import Stsvend
from stsvend.local.webidentity import JWKS_CACHE_SECONDS, Keys, Rejected, _verify_signature, parse_token
from tests.functional.conftest import REGION, Stack

ISSUER = "http://127.0.0.1:8000"
PARAMS: dict[str, Any] = {
    "Tags": [{"Key": "stsvend:caller", "Value": "arn:aws:iam::111111111111:user/jenkins"}],
    "TransitiveTagKeys": ["stsvend:caller"],
    "SourceIdentity": "jenkins",
}


def _service(monkeypatch: pytest.MonkeyPatch, *keys: str) -> Stsvend:
    monkeypatch.setenv("STSVEND_ISSUER_URL", ISSUER)
    monkeypatch.setenv("STSVEND_ISSUER_KEYS", ",".join(keys))
    return Stsvend.from_settings(Settings.from_env())


class Published:
    """What the issuer URL serves right now: the current deployment's documents."""

    def __init__(self) -> None:
        self.service: Stsvend | None = None
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        assert self.service is not None and url.startswith(ISSUER)
        self.fetched.append(url)
        document = "jwks" if url.endswith("/jwks.json") else "openid-configuration"
        return self.service.published(document, "r", None).encode()


def _token(service: Stsvend) -> str:
    assert service.issuer is not None
    return service.issuer.token("arn:aws:iam::222222222222:role/long-jobs|x", PARAMS, "r")


def _accepted(keys: Keys, token: str) -> bool:
    parsed = parse_token(token)
    try:
        _verify_signature(parsed, keys.key(ISSUER, parsed.header["kid"]))
    except Rejected:
        return False
    return True


def test_a_rollover_publishes_two_keys_and_no_token_is_refused_on_the_way(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = boto3.client("kms", region_name=REGION, endpoint_url=stack.url)
    old = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    new = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    published = Published()
    now = [0.0]
    keys = Keys(fetch=published.fetch, clock=lambda: now[0])

    def deploy(*arns: str) -> tuple[Stsvend, list[str]]:
        published.service = _service(monkeypatch, *arns)
        jwks = json.loads(published.service.published("jwks", "r", None))
        now[0] += JWKS_CACHE_SECONDS + 1  # STS's cache of the JWKS runs out before the next step
        return published.service, [k["kid"] for k in jwks["keys"]]

    before, kids = deploy(old)
    old_token = _token(before)
    assert len(kids) == 1 and _accepted(keys, old_token)

    # 1. Publish the new key beside the old one; still sign with the old.
    publishing, kids = deploy(old, new)
    assert len(kids) == 2 and len(set(kids)) == 2
    assert _accepted(keys, old_token) and _accepted(keys, _token(publishing))
    assert json.loads(published.fetch(f"{ISSUER}/.well-known/openid-configuration"))[
        "id_token_signing_alg_values_supported"
    ] == ["ES256", "RS256"]

    # 2. Sign with the new key; the old one stays published for tokens already signed.
    switched, kids = deploy(new, old)
    new_token = _token(switched)
    assert parse_token(new_token).header == {"alg": "ES256", "typ": "JWT", "kid": kids[0]}
    assert _accepted(keys, new_token) and _accepted(keys, old_token)

    # 3. Retire the old key: its tokens are refused, the new key's are not.
    _, kids = deploy(new)
    assert len(kids) == 1
    assert _accepted(keys, new_token) and not _accepted(keys, old_token)


def test_an_unknown_kid_reads_the_jwks_again_but_not_on_every_token(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = boto3.client("kms", region_name=REGION, endpoint_url=stack.url)
    first = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    second = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    published = Published()
    now = [100.0]
    keys = Keys(fetch=published.fetch, clock=lambda: now[0])
    published.service = _service(monkeypatch, first)
    assert _accepted(keys, _token(published.service))
    reads = len(published.fetched)
    published.service = _service(monkeypatch, second, first)  # a deployment mid-cache
    token = _token(published.service)
    assert not _accepted(keys, token) and len(published.fetched) == reads  # within 2 s: kept
    now[0] += 3
    assert _accepted(keys, token) and len(published.fetched) == reads + 2
