"""The identity-provider mode's server side, without AWS: public keys read from KMS's DER form as JWKs
(held to the `cryptography` library's own reading), tokens assembled around kms:Sign whose signatures
verify with the published key, and the grant and settings that choose the mode."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chalicelib.config import Settings
from chalicelib.errors import AssumeRoleDenied, ConfigError
from chalicelib.grants import GrantError, decision_subject, parse_grant
from chalicelib.idp import (
    SOURCE_IDENTITY_CLAIM,
    TAGS_CLAIM,
    TOKEN_LIFETIME_SECONDS,
    Issuer,
    issuer_keys,
    issuer_url,
)
from chalicelib.jose import JoseError, b64url_decode, ecdsa_raw, jwk_from_spki, thumbprint

KEY_ARN = "arn:aws:kms:us-east-1:111111111111:key/0d9c3a6e-1111-4222-8333-444455556666"
OTHER_ARN = "arn:aws:kms:us-east-1:111111111111:key/7e2b1c0d-aaaa-4bbb-8ccc-ddddeeeeffff"
ROLE = "arn:aws:iam::222222222222:role/long-jobs"
PRINCIPAL = "arn:aws:iam::111111111111:user/jenkins"


def _b64(number: int, size: int | None = None) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _spki(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class FakeKms:
    """kms:GetPublicKey and kms:Sign over keys held here, with KMS's answer shapes."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys
        self.signed: list[dict[str, Any]] = []

    def get_public_key(self, KeyId: str) -> dict[str, Any]:
        key = self.keys[KeyId]
        if isinstance(key, rsa.RSAPrivateKey):
            spec, algorithms = f"RSA_{key.key_size}", ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"]
        else:
            spec, algorithms = "ECC_NIST_P256", ["ECDSA_SHA_256"]
        return {
            "KeyId": KeyId,
            "PublicKey": _spki(key),
            "KeySpec": spec,
            "KeyUsage": "SIGN_VERIFY",
            "SigningAlgorithms": algorithms,
        }

    def sign(self, KeyId: str, Message: bytes, MessageType: str, SigningAlgorithm: str) -> dict[str, Any]:
        self.signed.append({"KeyId": KeyId, "Message": Message, "MessageType": MessageType})
        key = self.keys[KeyId]
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        algorithm: Any = Prehashed(hashes.SHA256()) if MessageType == "DIGEST" else hashes.SHA256()
        if isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(Message, padding.PKCS1v15(), algorithm)
        else:
            signature = key.sign(Message, ec.ECDSA(algorithm))
        return {"KeyId": KeyId, "Signature": signature, "SigningAlgorithm": SigningAlgorithm}


def _params(tags: dict[str, str] | None = None) -> dict[str, Any]:
    tags = {
        "stsvend:caller": PRINCIPAL,
        "stsvend:caller-account": "111111111111",
        "stsvend:request-id": "req-1",
        **(tags or {}),
    }
    return {
        "RoleArn": ROLE,
        "RoleSessionName": "jenkins-build",
        "DurationSeconds": 43200,
        "SourceIdentity": "jenkins",
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        "TransitiveTagKeys": ["stsvend:caller", "stsvend:caller-account"],
    }


def _verify(token: str, private: Any) -> dict[str, Any]:
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    signed = f"{header_b64}.{claims_b64}".encode()
    signature = b64url_decode(signature_b64)
    public = private.public_key()
    if header["alg"] == "RS256":
        public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert header["alg"] == "ES256" and len(signature) == 64
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    return {"header": header, "claims": json.loads(b64url_decode(claims_b64))}


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_an_rsa_public_key_reads_as_the_library_reads_it(bits: int) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = key.public_key().public_numbers()
    assert jwk_from_spki(_spki(key)) == {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}


def test_a_p256_public_key_reads_as_the_library_reads_it() -> None:
    for _ in range(20):  # coordinates with leading zero bytes keep their 32 bytes
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        assert jwk_from_spki(_spki(key)) == {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x, 32),
            "y": _b64(numbers.y, 32),
        }


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP256K1()),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
    ],
    ids=["p384", "secp256k1", "rsa1024"],
)
def test_other_keys_are_refused(key: Any) -> None:
    with pytest.raises(JoseError):
        jwk_from_spki(_spki(key))


@pytest.mark.parametrize(
    "der", [b"", b"\x30", b"\x30\x05\x02\x01\x01", b"\x30\x84\xff\xff\xff\xff", b"\x04\x00"]
)
def test_malformed_der_is_refused(der: bytes) -> None:
    with pytest.raises(JoseError):
        jwk_from_spki(der)
    with pytest.raises(JoseError):
        ecdsa_raw(der)


def test_the_thumbprint_is_rfc_7638s_example() -> None:
    # RFC 7638 section 3.1: the example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qv"
        "zqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
        "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_token_verifies_with_the_published_key_and_carries_the_decision(kind: str) -> None:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    kms = FakeKms({KEY_ARN: private})
    issuer = Issuer(
        "https://issuer.example/api", (KEY_ARN,), "stsvend", lambda: kms, clock=lambda: 1_800_000_000.5
    )
    subject = decision_subject(PRINCIPAL, ROLE)
    token = issuer.token(subject, _params(), "req-1")
    verified = _verify(token, private)
    published = json.loads(issuer.jwks())["keys"]
    assert [k["kid"] for k in published] == [verified["header"]["kid"]]
    assert verified["header"]["alg"] == ("RS256" if kind == "rsa" else "ES256")
    claims = verified["claims"]
    assert claims["iss"] == "https://issuer.example/api" and claims["aud"] == "stsvend"
    assert claims["sub"] == f"{ROLE}|{PRINCIPAL}"
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME_SECONDS and claims["iat"] == 1_800_000_000
    assert claims["jti"] == "req-1"
    assert claims[TAGS_CLAIM] == {
        "principal_tags": {
            "stsvend:caller": [PRINCIPAL],
            "stsvend:caller-account": ["111111111111"],
            "stsvend:request-id": ["req-1"],
        },
        "transitive_tag_keys": ["stsvend:caller", "stsvend:caller-account"],
    }
    assert claims[SOURCE_IDENTITY_CLAIM] == "jenkins"
    assert kms.signed[-1]["MessageType"] == "RAW"


def test_a_signing_input_over_kms_raw_limit_is_signed_as_its_digest() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kms = FakeKms({KEY_ARN: private})
    issuer = Issuer("https://issuer.example", (KEY_ARN,), "stsvend", lambda: kms)
    many = {f"tag-{i:02d}": "v" * 200 for i in range(40)}
    token = issuer.token("sub-long", _params(many), "req-2")
    _verify(token, private)
    assert kms.signed[-1]["MessageType"] == "DIGEST" and len(kms.signed[-1]["Message"]) == 32
    assert kms.signed[-1]["Message"] == hashlib.sha256(token.rpartition(".")[0].encode()).digest()


def test_a_rollover_publishes_both_keys_and_signs_with_the_first() -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = ec.generate_private_key(ec.SECP256R1())
    kms = FakeKms({KEY_ARN: old, OTHER_ARN: new})
    before = Issuer("https://i.example", (KEY_ARN, OTHER_ARN), "stsvend", lambda: kms)
    after = Issuer("https://i.example", (OTHER_ARN, KEY_ARN), "stsvend", lambda: kms)
    kids = [k["kid"] for k in json.loads(before.jwks())["keys"]]
    assert len(set(kids)) == 2 and sorted(kids) == sorted(k["kid"] for k in json.loads(after.jwks())["keys"])
    assert _verify(before.token("sub-x1", _params(), "r"), old)["header"]["kid"] == kids[0]
    assert _verify(after.token("sub-x1", _params(), "r"), new)["header"]["kid"] == kids[1]
    assert before.discovery()["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert before.discovery()["jwks_uri"] == "https://i.example/.well-known/jwks.json"


def test_the_jwks_is_kept_then_read_again() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    kms = FakeKms({KEY_ARN: key})
    calls: list[str] = []
    real = kms.get_public_key

    def counted(KeyId: str) -> dict[str, Any]:
        calls.append(KeyId)
        return real(KeyId)

    kms.get_public_key = counted  # type: ignore[method-assign]
    now = [1000.0]
    issuer = Issuer("https://i.example", (KEY_ARN,), "stsvend", lambda: kms, clock=lambda: now[0])
    first = issuer.jwks()
    now[0] += 299
    assert issuer.jwks() is first
    now[0] += 2
    assert issuer.jwks() == first and calls == [KEY_ARN]  # the key itself is read once


def test_a_key_that_cannot_sign_is_refused() -> None:
    class SymmetricKms(FakeKms):
        def get_public_key(self, KeyId: str) -> dict[str, Any]:
            return {**super().get_public_key(KeyId), "KeyUsage": "ENCRYPT_DECRYPT"}

    kms = SymmetricKms({KEY_ARN: ec.generate_private_key(ec.SECP256R1())})
    with pytest.raises(AssumeRoleDenied, match="SIGN_VERIFY"):
        Issuer("https://i.example", (KEY_ARN,), "stsvend", lambda: kms).token("sub-x1", _params(), "r")


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example",
        "https://issuer.example/",
        "https://issuer.example?x=1",
        "https://a/b#c",
        "http://10.0.0.1:80",
        "https://issuer.example//x",
        "ftp://issuer.example",
        "https://ex ample.com",
    ],
)
def test_bad_issuer_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        issuer_url(url)


def test_issuer_urls_and_keys_that_are_accepted() -> None:
    assert issuer_url("https://abc.execute-api.us-east-1.amazonaws.com/api") == (
        "https://abc.execute-api.us-east-1.amazonaws.com/api"
    )
    assert issuer_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert issuer_keys(f" {KEY_ARN} , {OTHER_ARN}") == (KEY_ARN, OTHER_ARN)
    for bad in ("", f"{KEY_ARN},{KEY_ARN}", "alias/stsvend", f"{KEY_ARN},{OTHER_ARN},{KEY_ARN[:-1]}1,x"):
        with pytest.raises(ConfigError):
            issuer_keys(bad)


def test_settings_take_the_issuer_together_or_not_at_all() -> None:
    base = {"STSVEND_GRANTS_TABLE": "t", "STSVEND_IDENTITY_MODE": "apigateway", "AWS_REGION": "us-east-1"}
    assert Settings.from_env(base).issuer_url is None
    settings = Settings.from_env(
        {
            **base,
            "STSVEND_ISSUER_URL": "https://i.example",
            "STSVEND_ISSUER_KEYS": KEY_ARN,
            "STSVEND_TOKEN_AUDIENCE": "stsvend-prod",
        }
    )
    assert (settings.issuer_url, settings.issuer_keys, settings.token_audience) == (
        "https://i.example",
        (KEY_ARN,),
        "stsvend-prod",
    )
    for partial in (
        {"STSVEND_ISSUER_URL": "https://i.example"},
        {"STSVEND_ISSUER_KEYS": KEY_ARN},
        {"STSVEND_TOKEN_AUDIENCE": "a b"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env({**base, **partial})


def _grant(**role: Any) -> Any:
    return parse_grant(
        {"principal": PRINCIPAL, "roles": [{"role_arn": ROLE, **role}]}, resolve_policy=lambda n: None
    )


def test_a_grant_role_in_web_identity_mode_may_last_twelve_hours() -> None:
    role = _grant(mode="web-identity", max_duration_seconds=43200).roles[0]
    assert role.mode == "web-identity" and role.max_duration_seconds == 43200
    assert role.to_item()["mode"] == "web-identity"
    assert "mode" not in _grant().roles[0].to_item() and _grant().roles[0].mode == "assume-role"


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        ({"max_duration_seconds": 7200}, "3600"),
        ({"mode": "web-identity", "max_duration_seconds": 43201}, "43200"),
        ({"mode": "saml"}, "mode"),
        ({"mode": ["web-identity"]}, "mode"),
        ({"mode": "web-identity", "external_id": "abc123"}, "external_id"),
    ],
)
def test_grant_roles_outside_their_modes_limits_are_refused(role: dict[str, Any], problem: str) -> None:
    with pytest.raises(GrantError, match=problem):
        _grant(**role)


def test_a_subject_too_long_for_sts_is_refused_when_the_grant_is_read() -> None:
    long_role = "arn:aws:iam::222222222222:role/" + "p/" * 100 + "r" * 60
    with pytest.raises(GrantError, match="sub"):
        parse_grant(
            {"principal": PRINCIPAL, "roles": [{"role_arn": long_role, "mode": "web-identity"}]},
            resolve_policy=lambda n: None,
        )
