"""The identity-provider vending mode (docs/long-sessions.md): for a grant's role in `web-identity`
mode the service does not call AssumeRole from its own role session (role chaining, capped at an
hour by STS) but acts as an OpenID Connect provider that the target role trusts. For each decision
it signs a short-lived token with an asymmetric AWS KMS key, whose private half never leaves KMS,
and exchanges it with `AssumeRoleWithWebIdentity`, which is not chaining: the session may last up to
the role's own maximum (12 hours at most).

The token (a JWS assembled here around `kms:Sign`, no JOSE library):
- `iss`: the service's issuer URL (`STSVEND_ISSUER_URL`); the JWKS is served under it (app.py).
- `aud`: `STSVEND_TOKEN_AUDIENCE` (default `stsvend`), the client id of the target account's IAM
  OIDC provider and a trust condition.
- `sub`: `<role ARN>|<grant principal>` (chalicelib.grants.decision_subject): the role and the grant
  that decided, which the target role's trust policy pins.
- `https://aws.amazon.com/tags`: the session tags and the transitive tag keys AssumeRole mode sends;
  `https://aws.amazon.com/source_identity`: the caller's source identity.
- `iat`, `exp` (TOKEN_LIFETIME_SECONDS later), `jti`: the request id.

The signing key is the first of `STSVEND_ISSUER_KEYS` (KMS key ARNs); every listed key is
published in the JWKS, `kid` = the key's RFC 7638 thumbprint, so a rollover publishes two.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from chalicelib.arns import KMS_KEY
from chalicelib.errors import AssumeRoleDenied, ConfigError, ServiceUnavailable, StsvendError
from chalicelib.jose import JoseError, b64url, compact, ecdsa_raw, jwk_from_spki, thumbprint
from chalicelib.sts import assume_role
from chalicelib.vending import Plan

TOKEN_LIFETIME_SECONDS = 300
JWKS_CACHE_SECONDS = 300
DEFAULT_AUDIENCE = "stsvend"
MAX_ISSUER_KEYS = 3
# kms:Sign takes a message of at most 4096 bytes; a longer signing input is hashed here and signed
# as a digest (https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html).
MAX_RAW_MESSAGE_BYTES = 4096
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
KMS_KEY_ARN = re.compile(KMS_KEY)
_ISSUER = re.compile(r"(https://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|http://(?:127\.0\.0\.1|localhost):[0-9]{1,5})(/[A-Za-z0-9._~/-]{1,200})?")
# KeySpec -> (JWS alg, KMS SigningAlgorithm)
_ALGORITHMS = {
    "RSA_2048": ("RS256", "RSASSA_PKCS1_V1_5_SHA_256"),
    "RSA_3072": ("RS256", "RSASSA_PKCS1_V1_5_SHA_256"),
    "RSA_4096": ("RS256", "RSASSA_PKCS1_V1_5_SHA_256"),
    "ECC_NIST_P256": ("ES256", "ECDSA_SHA_256"),
}
_THROTTLED = {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException"}


def issuer_url(raw: str) -> str:
    """`STSVEND_ISSUER_URL`: https://host[:port][/path], no trailing slash, query or fragment; plain
    http only on loopback (the local stack)."""
    value = raw.strip()
    if not _ISSUER.fullmatch(value) or value.endswith("/") or "//" in value.partition("://")[2]:
        raise ConfigError(
            f"STSVEND_ISSUER_URL={value!r} must be https://host[/path] (no trailing slash, query or"
            " fragment; http only for 127.0.0.1 or localhost)"
        )
    return value


def issuer_keys(raw: str) -> tuple[str, ...]:
    """`STSVEND_ISSUER_KEYS`: comma-separated KMS key ARNs, the signing key first."""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys or len(keys) > MAX_ISSUER_KEYS or len(set(keys)) != len(keys):
        raise ConfigError(f"STSVEND_ISSUER_KEYS must list 1-{MAX_ISSUER_KEYS} distinct KMS key ARNs")
    for key in keys:
        if not KMS_KEY_ARN.fullmatch(key):
            raise ConfigError(f"STSVEND_ISSUER_KEYS entry {key!r} is not a KMS key ARN (no aliases)")
    return keys


class NotFound(StsvendError):
    """The issuer's documents on a service that is no identity provider (not a vend's denial)."""

    code = "NotFound"


class IssuerKey(NamedTuple):
    arn: str
    kid: str
    alg: str
    kms_algorithm: str
    jwk: dict[str, str]  # public members only

    def published(self) -> dict[str, str]:
        return {**self.jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def _kms_failure(exc: Exception, doing: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        return ServiceUnavailable("AWS KMS could not be reached; try again")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _THROTTLED:
            return ServiceUnavailable("AWS KMS is throttling or unavailable; try again")
        return AssumeRoleDenied(
            f"the service cannot {doing} with its KMS issuer key ({code}); nothing was vended"
        )
    return exc


class Issuer:
    """The service as an OIDC identity provider: its keys (read from KMS once per key and kept),
    its public documents, and the tokens it signs."""

    def __init__(
        self,
        url: str,
        key_arns: tuple[str, ...],
        audience: str,
        kms: Callable[[], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.key_arns = key_arns
        self.audience = audience
        self._kms = kms
        self._clock = clock
        self._keys: dict[str, IssuerKey] = {}
        self._lock = threading.Lock()
        self._jwks: tuple[float, bytes] | None = None

    def key(self, arn: str) -> IssuerKey:
        key = self._keys.get(arn)
        if key is None:
            key = self._read_key(arn)
            with self._lock:
                self._keys[arn] = key
        return key

    def _read_key(self, arn: str) -> IssuerKey:
        try:
            answer = self._kms().get_public_key(KeyId=arn)
        except Exception as exc:
            raise _kms_failure(exc, "read the public key") from exc
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        if answer.get("KeyUsage") != "SIGN_VERIFY" or spec not in _ALGORITHMS:
            raise AssumeRoleDenied(
                "the service's KMS issuer key must be an asymmetric SIGN_VERIFY key of spec"
                f" {', '.join(_ALGORITHMS)}; nothing was vended"
            )
        alg, kms_algorithm = _ALGORITHMS[spec]
        if kms_algorithm not in answer.get("SigningAlgorithms", []):
            raise AssumeRoleDenied(f"the service's KMS issuer key does not offer {kms_algorithm}")
        try:
            jwk = jwk_from_spki(bytes(answer["PublicKey"]))
        except JoseError as exc:
            raise AssumeRoleDenied(f"the service's KMS issuer key cannot be published: {exc}") from exc
        return IssuerKey(arn, thumbprint(jwk), alg, kms_algorithm, jwk)

    # --- the public side --------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata STS reads (only what an ID token issuer needs)."""
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({self.key(a).alg for a in self.key_arns}),
            "claims_supported": ["iss", "aud", "sub", "iat", "exp", "jti", TAGS_CLAIM, SOURCE_IDENTITY_CLAIM],
        }

    def jwks(self) -> bytes:
        """The JWKS document, every listed key, kept for JWKS_CACHE_SECONDS."""
        now = self._clock()
        cached = self._jwks
        if cached is not None and now - cached[0] < JWKS_CACHE_SECONDS:
            return cached[1]
        document = {"keys": [self.key(arn).published() for arn in self.key_arns]}
        body = json.dumps(document, separators=(",", ":")).encode("ascii")
        self._jwks = (now, body)
        return body

    # --- tokens -------------------------------------------------------------------------------

    def token(self, subject: str, params: dict[str, Any], token_id: str) -> str:
        """A signed token for the AssumeRole parameters `params` stsvend decided (tags, transitive
        keys and source identity move into claims)."""
        key = self.key(self.key_arns[0])
        now = int(self._clock())
        tags: dict[str, list[str]] = {tag["Key"]: [tag["Value"]] for tag in params["Tags"]}
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "jti": token_id,
            TAGS_CLAIM: {"principal_tags": tags, "transitive_tag_keys": list(params["TransitiveTagKeys"])},
            SOURCE_IDENTITY_CLAIM: params["SourceIdentity"],
        }
        signing_input = compact({"alg": key.alg, "typ": "JWT", "kid": key.kid}, claims)
        if len(signing_input) <= MAX_RAW_MESSAGE_BYTES:
            message, message_type = signing_input, "RAW"
        else:
            message, message_type = hashlib.sha256(signing_input).digest(), "DIGEST"
        try:
            answer = self._kms().sign(
                KeyId=key.arn, Message=message, MessageType=message_type, SigningAlgorithm=key.kms_algorithm
            )
        except Exception as exc:
            raise _kms_failure(exc, "sign") from exc
        signature = bytes(answer["Signature"])
        if key.alg == "ES256":
            signature = ecdsa_raw(signature)
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"


class _WebIdentitySts:
    """STS as `chalicelib.sts.assume_role` calls it, answering with AssumeRoleWithWebIdentity: the
    same answer, error translation and shape as AssumeRole mode."""

    def __init__(self, sts: Any, token: str) -> None:
        self._sts = sts
        self._token = token

    def assume_role(self, **params: Any) -> Any:
        call = {
            "RoleArn": params["RoleArn"],
            "RoleSessionName": params["RoleSessionName"],
            "DurationSeconds": params["DurationSeconds"],
            "WebIdentityToken": self._token,
        }
        for optional in ("Policy", "PolicyArns"):
            if optional in params:
                call[optional] = params[optional]
        return self._sts.assume_role_with_web_identity(**call)


def vend_web_identity(
    issuer: Issuer | None, sts: Any, plan: Plan, subject: str, request_id: str
) -> dict[str, Any]:
    """Sign a token for `plan` and exchange it; the answer has AssumeRole mode's shape."""
    if issuer is None:
        raise AssumeRoleDenied(
            f"{plan.role.role_arn} is granted in web-identity mode, but the service has no issuer"
            " configured (STSVEND_ISSUER_URL, STSVEND_ISSUER_KEYS); nothing was vended"
        )
    token = issuer.token(subject, plan.params, request_id)
    try:
        return assume_role(_WebIdentitySts(sts, token), plan)
    except AssumeRoleDenied as exc:
        raise AssumeRoleDenied(
            f"STS refused the web identity token for {plan.role.role_arn} ({_code(exc)}): check that"
            f" its account has the IAM OIDC provider for {issuer.url} with client id {issuer.audience},"
            " and that its trust policy allows sts:AssumeRoleWithWebIdentity, sts:TagSession and"
            f" sts:SetSourceIdentity for that provider with aud {issuer.audience} and sub {subject}"
        ) from exc


def _code(exc: Exception) -> str:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or "refused")
    return "refused"
