"""The OIDC route defers `cryptography.x509`, which PyJWT imports but stsvend never uses
(chalicelib.oidc.signature): a token still verifies without loading it, and PyJWT's own use of it
(refusing a certificate as an HMAC secret) still works, loading it in full on first touch. Each case
runs in a fresh interpreter: the test process has loaded these modules already."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_a_token_verifies_without_loading_x509() -> None:
    result = run(
        """
        import sys, time
        import chalicelib.oidc.verify as verify
        import chalicelib.oidc.signature
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        lazy = sys.modules["cryptography.x509"]
        assert type(lazy).__name__ == "_LazyModule", type(lazy)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "k1"}
        now = int(time.time())
        token = jwt.encode({"iss": "https://ci.example", "aud": "stsvend", "iat": now, "exp": now + 60},
                           private, algorithm="RS256", headers={"kid": "k1"})
        claims = jwt.decode(token, verify._prepared_key(jwk, "RS256"), algorithms=["RS256"],
                            audience="stsvend", issuer="https://ci.example")
        assert claims["aud"] == "stsvend"
        assert "cryptography.x509.name" not in sys.modules
        assert type(sys.modules["cryptography.x509"]).__name__ == "_LazyModule"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _certificate_der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_pyjwt_still_refuses_a_certificate_as_an_hmac_secret() -> None:
    # PyJWT's one use of cryptography.x509: the deferred module loads in full when it is touched.
    result = run(
        """
        import sys
        import chalicelib.oidc.signature
        from jwt.algorithms import HMACAlgorithm
        from jwt.exceptions import InvalidKeyError

        assert "cryptography.x509.name" not in sys.modules
        try:
            HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(bytes.fromhex(sys.argv[1]))
        except InvalidKeyError as exc:
            assert "x509 certificate" in str(exc), exc
        else:
            raise AssertionError("a DER certificate was accepted as an HMAC secret")
        assert "cryptography.x509.name" in sys.modules
        print("refused")
        """,
        _certificate_der().hex(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_deferring_a_loaded_or_absent_module_changes_nothing() -> None:
    result = run(
        """
        import sys
        import json
        from chalicelib.oidc.signature import defer_import

        defer_import("json")
        assert sys.modules["json"] is json
        defer_import("stsvend_no_such_module")
        assert "stsvend_no_such_module" not in sys.modules
        print("unchanged")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unchanged"

