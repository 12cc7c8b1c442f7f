"""A local OIDC issuer on loopback: discovery document and JWKS over HTTP, and tokens it signs,
shaped like a CI system's (GitHub Actions, GitLab CI, Buildkite, CircleCI).

The local stack trusts it (`oidc_issuers` in `.stsvend/local.json`), and the tests forge tokens with
it: it signs whatever header and claims it is given, so a test can make every malformed token an
attacker could. Needs PyJWT with its crypto extra (the development dependencies).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "stsvend"  # the client's and the GitHub action's default
# The local stack's issuers (`make run`), one of each kind, under /<name> on one loopback port; the
# local grants file (policies/grants/local.json) configures them with the default port's URLs.
LOCAL_ISSUERS = {
    "github-local": "github-actions",
    "gitlab-local": "gitlab-ci",
    "buildkite-local": "buildkite",
    "circleci-local": "circleci",
}
DEFAULT_PORT = 8100
PORT_VARIABLE = "STSVEND_OIDC_PORT"


# Each CI system's token as it looks (its documented claims, values of a plausible run), less the
# registered claims every token carries (iss, aud, nbf, iat, exp; jti where the system sends one).
# (claims, lifetime in seconds, whether the system sends a jti)
SHAPES: dict[str, tuple[dict[str, Any], int, bool]] = {
    "github-actions": (
        {
            "sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "repository": "octo-org/octo-repo",
            "repository_id": "400000001", "repository_owner": "octo-org", "repository_owner_id": "9000001",
            "repository_visibility": "private", "ref": "refs/heads/main", "ref_type": "branch",
            "ref_protected": "true", "sha": "a" * 40, "workflow": "deploy",
            "workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
            "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
            "event_name": "push", "actor": "octocat", "actor_id": "583231", "run_id": "7000000001",
            "run_number": "42", "run_attempt": "1", "runner_environment": "github-hosted",
        },
        300,
        True,
    ),
    "gitlab-ci": (
        {
            "sub": "project_path:acme/app:ref_type:branch:ref:main", "namespace_id": "72",
            "namespace_path": "acme", "project_id": "2048", "project_path": "acme/app", "user_id": "17",
            "user_login": "alice", "pipeline_id": "99001", "pipeline_source": "push", "job_id": "550001",
            "ref": "main", "ref_type": "branch", "ref_protected": "true", "sha": "b" * 40,
            "runner_environment": "gitlab-hosted",
        },
        300,
        True,
    ),
    "buildkite": (
        {
            "sub": "organization:acme:pipeline:deploy:ref:refs/heads/main:commit:cafe:step:deploy",
            "organization_slug": "acme", "organization_id": "0a0b0c0d-1111-2222-3333-444455556666",
            "pipeline_slug": "deploy", "pipeline_id": "0f0e0d0c-7777-8888-9999-aaaabbbbcccc",
            "build_number": 314, "build_branch": "main", "build_tag": None, "build_commit": "c" * 40,
            "step_key": "deploy", "job_id": "01900000-0000-7000-8000-000000000001",
            "agent_id": "01900000-0000-7000-8000-0000000000aa",
        },
        300,
        False,
    ),
    "circleci": (
        {
            "sub": "org/6f7c1f3a-0000-4000-8000-000000000001/project/6f7c1f3a-0000-4000-8000-0000000000p1",
            "oidc.circleci.com/project-id": "6f7c1f3a-0000-4000-8000-000000000002",
            "oidc.circleci.com/vcs-ref": "refs/heads/main",
            "oidc.circleci.com/vcs-origin": "github.com/acme/app",
            "oidc.circleci.com/context-ids": [], "oidc.circleci.com/ssh-rerun": False,
        },
        3600,
        False,
    ),
}


def shaped_claims(kind: str, issuer: str, audience: str, now: int) -> dict[str, Any]:
    """A fresh token's claims, shaped like `kind`'s (a new jti each time where it sends one)."""
    claims, lifetime, has_jti = SHAPES[kind]
    shaped = {"iss": issuer, "aud": audience, **copy.deepcopy(claims)}
    if has_jti:
        shaped["jti"] = str(uuid.uuid4())
    return {**shaped, "nbf": now - 5, "iat": now, "exp": now + lifetime}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an RSA key: the kid, the same wherever the key is loaded."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Signer:
    """One issuer: its RSA key (kid: the key's thumbprint), its documents, tokens it signs."""

    def __init__(self, kind: str, url: str, key: rsa.RSAPrivateKey | None = None) -> None:
        if kind not in SHAPES:
            raise ValueError(f"kind must be one of {', '.join(sorted(SHAPES))}")
        self.kind = kind
        self.url = url
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = thumbprint(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key())))
        self.fetches: list[str] = []
        self.extra_keys: list[dict[str, Any]] = []

    @classmethod
    def load(cls, kind: str, url: str, pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls(kind, url, key)

    def private_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk(), *self.extra_keys]}

    def claims(self, audience: str = AUDIENCE, **overrides: Any) -> dict[str, Any]:
        """A token's claims as this kind of CI system sends them, with `overrides` (None removes)."""
        claims = shaped_claims(self.kind, self.url, audience, int(time.time()))
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """`claims` signed with the issuer's key (RS256, its kid) and `headers` added or replaced."""
        headers = {"kid": self.kid, **(headers or {})}
        token: str = jwt.encode(dict(claims), self.key, algorithm="RS256", headers=headers)
        return token

    def token(self, audience: str = AUDIENCE, **overrides: Any) -> str:
        return self.sign(self.claims(audience, **overrides))


class IssuerServer:
    """Issuers on one loopback port, each under its own path (`/<name>`), or one at the root."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.signers: dict[str, Signer] = {}
        self._host = host
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                found = server.route(self.path)
                if found is None:
                    self.send_error(404)
                    return
                data = json.dumps(found).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def add(self, prefix: str, kind: str, pem: bytes | None = None) -> Signer:
        url = self.base_url + prefix
        signer = Signer.load(kind, url, pem) if pem else Signer(kind, url)
        self.signers[prefix] = signer
        return signer

    def route(self, path: str) -> dict[str, Any] | None:
        for prefix, signer in self.signers.items():
            if path == prefix + "/.well-known/openid-configuration":
                signer.fetches.append(path[len(prefix) :])
                return signer.discovery()
            if path == prefix + "/.well-known/jwks":
                signer.fetches.append(path[len(prefix) :])
                return signer.jwks()
        return None

    def start(self) -> IssuerServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LocalIssuer(Signer):
    """One issuer at the root of its own server on a free loopback port (the tests' issuer)."""

    def __init__(self, kind: str = "github-actions") -> None:
        self._own = IssuerServer()
        super().__init__(kind, self._own.base_url)
        self._own.signers[""] = self

    def start(self) -> LocalIssuer:
        self._own.start()
        return self

    def stop(self) -> None:
        self._own.stop()

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
