"""Who is calling: the `Caller` of docs/design.md section 2, from API Gateway or from an STS proof.

The identity mode is chosen once, where the service is wired: `ApiGatewayIdentity` or
`StsProofIdentity`, each resolving the caller of the request being served.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit
from xml.etree import ElementTree

from chalicelib.arns import parse_caller_arn
from chalicelib.errors import NotAuthenticated, ServiceUnavailable

PROOF_HEADER = "x-stsvend-identity"
SERVER_ID_HEADER = "x-stsvend-server-id"
REQUEST_HEADER = "x-stsvend-request"
GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
MAX_PROOF_BYTES = 8192
# A proof may be this old, and dated at most this far ahead (a future date must not extend its life).
MAX_PROOF_AGE_SECONDS = 300
MAX_FUTURE_SKEW_SECONDS = 60
# What a GetCallerIdentity signature needs, as botocore and the other AWS SDKs sign it, plus the two
# binding headers. Nothing else may be signed: a signed header reaches STS, and an endpoint that
# reads one (an emulator's X-Amz-Target, say) could answer for a request the caller never signed.
SIGNED_HEADERS_ALLOWED = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-user-agent",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        SERVER_ID_HEADER,
        REQUEST_HEADER,
    }
)
SIGNED_HEADERS_REQUIRED = frozenset({"host", "x-amz-date", SERVER_ID_HEADER, REQUEST_HEADER})
# Headers the server sets itself when forwarding (its endpoint's Host, the body's framing).
_SET_BY_SERVER = frozenset({"host", "content-length"})
# Session name of the credentials Cognito's enhanced flow hands out: in sts-proof mode there is no
# identity block, and this is how such a caller shows. It is all sts-proof mode can tell:
# GetCallerIdentity answers only Arn, UserId (role id:session name) and Account, the same for every
# session of a role, and the role's trust policy (which would name cognito-identity.amazonaws.com)
# is not visible to the service. A basic (classic) flow caller calls AssumeRoleWithWebIdentity
# itself with a session name of its choosing, so it shows as any other session of its role; any
# session so named is taken for Cognito's (refused unless allowed: the safe side). See
# docs/threat-model.md, section 2.
COGNITO_SESSION_NAME = "CognitoIdentityCredentials"
_COGNITO_FIELDS = (
    "cognitoIdentityPoolId",
    "cognitoIdentityId",
    "cognitoAuthenticationType",
    "cognitoAuthenticationProvider",
)
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
# The whole Authorization header, so no decoy `SignedHeaders=` elsewhere in it can be read instead.
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})/([0-9]{8})/([a-z0-9-]{1,32})/([a-z0-9-]{1,32})"
    r"/aws4_request, ?SignedHeaders=([a-z0-9;-]{1,1024}), ?Signature=[0-9a-f]{64}"
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,64}")  # an RFC 9110 token, lower-cased
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
# The body STS gets is always the GetCallerIdentity form. Another signed media type (JSON, say) can
# only make STS fail, which would read as an outage (503) that any caller could cause.
_FORM_CONTENT_TYPE = re.compile(r"application/x-www-form-urlencoded( *; *charset=utf-8)?", re.IGNORECASE)
_STS_CALLER_ERRORS = (
    b"<Code>SignatureDoesNotMatch<",
    b"<Code>InvalidClientTokenId<",
    b"<Code>ExpiredToken<",
)


@dataclass(frozen=True)
class Caller:
    arn: str
    principal_arn: str
    account_id: str
    user_id: str
    name: str
    session_name: str | None
    source_ip: str
    user_agent: str
    # The Cognito identity pool the caller's credentials come from, when API Gateway says so.
    cognito_identity_pool: str | None = None

    @property
    def unique_id(self) -> str:
        """The principal's unique id without the session part: AROA… for roles, AIDA… for users."""
        return self.user_id.split(":", 1)[0]

    @property
    def from_cognito(self) -> bool:
        """Whether the caller is an end user of a Cognito identity pool (one role for all of them)."""
        return self.cognito_identity_pool is not None or self.session_name == COGNITO_SESSION_NAME


# On the warm path (bench/README.md, "Warm vend overhead"): a warm function serves the same callers
# again and again (an agent's role session, for hours). The Caller is a pure function of these
# strings and immutable, so it is built once per distinct identity. Failures (NotAuthenticated) are
# raised, never cached.
@functools.lru_cache(maxsize=1024)
def build_caller(
    arn: str,
    user_id: str,
    account_id: str,
    source_ip: str,
    user_agent: str,
    cognito_identity_pool: str | None = None,
) -> Caller:
    parsed = parse_caller_arn(arn or "")
    if parsed is None:
        raise NotAuthenticated("the caller's identity is not an IAM user or role session")
    if account_id and account_id != parsed.account_id:
        raise NotAuthenticated("the caller's account does not match its ARN")
    return Caller(
        arn=parsed.arn,
        principal_arn=parsed.principal_arn,
        account_id=parsed.account_id,
        user_id=user_id or "",
        name=parsed.name,
        session_name=parsed.session_name,
        source_ip=source_ip,
        user_agent=user_agent,
        cognito_identity_pool=cognito_identity_pool,
    )


def caller_from_apigateway(identity: Mapping[str, Any] | None) -> Caller:
    """API Gateway (AWS_IAM auth) verified the signature; its identity block names the caller."""
    identity = identity or {}
    arn = identity.get("userArn")
    if not isinstance(arn, str) or not arn:
        raise NotAuthenticated("the request carries no verified IAM identity")
    return build_caller(
        arn,
        str(identity.get("caller") or ""),
        str(identity.get("accountId") or ""),
        str(identity.get("sourceIp") or ""),
        str(identity.get("userAgent") or ""),
        _cognito_identity_pool(identity),
    )


def _cognito_identity_pool(identity: Mapping[str, Any]) -> str | None:
    """The pool of a caller signing with Cognito identity-pool credentials, else None.

    Any Cognito field marks the caller: a pool id when API Gateway gives one, else a placeholder.
    """
    if any(identity.get(field) for field in _COGNITO_FIELDS):
        return str(identity.get("cognitoIdentityPoolId") or "unknown")
    return None


def request_binding(method: str, route: str, body: bytes) -> str:
    """The `X-Stsvend-Request` value for one API request: method, route path, body hash."""
    return f"{method.upper()} {route} {hashlib.sha256(body).hexdigest()}"


def normalize_server_id(raw: str) -> str | None:
    """A base URL in the form clients derive (`scheme://host[:port][/prefix]`), or None."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    default = 80 if parts.scheme == "http" else 443
    host = parts.hostname.lower()
    # An IPv6 literal keeps its brackets: without them `[a::1]:8443` and `[a::1:8443]` look alike.
    host = f"[{host}]" if ":" in host else host
    netloc = host + (f":{port}" if port is not None and port != default else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


class ServedRequest(Protocol):
    """What an identity resolver reads of the request being served."""

    @property
    def context(self) -> Mapping[str, Any]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def method(self) -> str: ...

    @property
    def route(self) -> str: ...

    @property
    def body(self) -> bytes | None: ...


class IdentityResolver(Protocol):
    mode: str

    def resolve(self, request: ServedRequest) -> Caller: ...


class ApiGatewayIdentity:
    """`apigateway` mode: API Gateway checked the SigV4 signature of the request itself."""

    mode = "apigateway"

    def resolve(self, request: ServedRequest) -> Caller:
        return caller_from_apigateway(request.context.get("identity"))


class HttpPoster(Protocol):
    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class StsAnswer:
    arn: str
    user_id: str
    account: str


class StsProofVerifier:
    """Checks an `X-Stsvend-Identity` proof and asks STS whose it is (the Vault AWS-auth pattern).

    Only `sts_endpoint`, fixed by configuration, is ever contacted, at most once per proof: the
    proof's URL must name it, and everything the caller controls is checked before.
    """

    def __init__(
        self,
        sts_endpoint: str,
        server_ids: tuple[str, ...],
        region: str,
        post: HttpPoster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = sts_endpoint.rstrip("/")
        self._server_ids = frozenset(server_ids)
        self._region = region
        self._post = post
        self._clock = clock

    def verify(self, header_value: str | None, binding: str) -> StsAnswer:
        """Whose proof this is, if it is a valid proof for the request described by `binding`."""
        proof = self._decode(header_value)
        headers = self._check(proof, binding)
        status, payload = self._post(self._endpoint + "/", headers, GET_CALLER_IDENTITY_BODY.encode())
        return self._answer(status, payload)

    @staticmethod
    def _decode(header_value: str | None) -> dict[str, Any]:
        if not header_value:
            raise NotAuthenticated("missing X-Stsvend-Identity proof")
        if len(header_value) > MAX_PROOF_BYTES:
            raise NotAuthenticated("the identity proof is too large")
        try:
            proof = json.loads(base64.b64decode(header_value, validate=True))
        except (binascii.Error, ValueError):
            raise NotAuthenticated("the identity proof is not base64-encoded JSON") from None
        except RecursionError:
            raise NotAuthenticated("the identity proof's JSON is nested too deeply") from None
        if not isinstance(proof, dict) or set(proof) != {"method", "url", "headers", "body"}:
            raise NotAuthenticated("the identity proof must have exactly method, url, headers, body")
        return proof

    def _check(self, proof: dict[str, Any], binding: str) -> dict[str, str]:
        raw_headers = proof["headers"]
        if not isinstance(raw_headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_headers.items()
        ):
            raise NotAuthenticated("the identity proof's headers must be a map of strings")
        if proof["method"] != "POST":
            raise NotAuthenticated("the identity proof must be a POST")
        if proof["url"] not in (self._endpoint, self._endpoint + "/"):
            raise NotAuthenticated("the identity proof is not signed for this service's STS endpoint")
        if proof["body"] != GET_CALLER_IDENTITY_BODY:
            raise NotAuthenticated("the identity proof must be exactly sts:GetCallerIdentity")
        headers = {k.lower(): v for k, v in raw_headers.items()}
        if len(headers) != len(raw_headers):
            raise NotAuthenticated("the identity proof repeats a header")
        if not all(_HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(v) for k, v in headers.items()):
            raise NotAuthenticated("the identity proof has a malformed header")
        authorization = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if authorization is None:
            raise NotAuthenticated("the identity proof is not SigV4-signed (Authorization malformed)")
        _key_id, scope_date, scope_region, scope_service, signed_list = authorization.groups()
        signed = signed_list.split(";")
        self._check_signed_headers(signed, headers)
        if scope_service != "sts":
            raise NotAuthenticated(
                f"the identity proof is signed for service {scope_service!r}, not 'sts'"
            )
        if scope_region != self._region:
            raise NotAuthenticated(
                f"the identity proof is signed for region {scope_region!r}, not {self._region!r}"
            )
        if headers[SERVER_ID_HEADER] not in self._server_ids:
            raise NotAuthenticated("the identity proof is for another server id (X-Stsvend-Server-Id)")
        if headers[REQUEST_HEADER] != binding:
            raise NotAuthenticated(
                "the identity proof is for another request (X-Stsvend-Request must be "
                "'METHOD /route sha256-of-body' of this request)"
            )
        if "content-type" in signed and not _FORM_CONTENT_TYPE.fullmatch(headers["content-type"]):
            raise NotAuthenticated(
                "the identity proof's Content-Type must be application/x-www-form-urlencoded"
            )
        self._check_date(headers["x-amz-date"], scope_date)
        # Only signed, allow-listed headers go to STS (plus the signature itself); Host and framing
        # are the server's own, for its configured endpoint.
        return {
            k: v
            for k, v in headers.items()
            if (k in signed or k == "authorization") and k not in _SET_BY_SERVER
        }

    @staticmethod
    def _check_signed_headers(signed: list[str], headers: Mapping[str, str]) -> None:
        if len(set(signed)) != len(signed):
            raise NotAuthenticated("the identity proof's SignedHeaders repeats a header")
        foreign = sorted(set(signed) - SIGNED_HEADERS_ALLOWED)
        if foreign:
            raise NotAuthenticated(
                f"the identity proof signs header(s) outside the allow-list: {', '.join(foreign)}"
            )
        missing = sorted(SIGNED_HEADERS_REQUIRED - set(signed))
        if missing:
            raise NotAuthenticated(
                f"the identity proof does not sign required header(s): {', '.join(missing)}"
            )
        absent = sorted(h for h in signed if h not in headers and h not in _SET_BY_SERVER)
        if absent:
            raise NotAuthenticated(
                f"the identity proof signs header(s) it does not carry: {', '.join(absent)}"
            )

    def _check_date(self, amz_date: str, scope_date: str) -> None:
        try:
            if not _AMZ_DATE.fullmatch(amz_date):
                raise ValueError
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise NotAuthenticated("the identity proof has no valid X-Amz-Date") from None
        if amz_date[:8] != scope_date:
            raise NotAuthenticated("the identity proof's credential scope date is not its X-Amz-Date")
        age = self._clock() - signed_at.timestamp()
        if age > MAX_PROOF_AGE_SECONDS:
            raise NotAuthenticated("the identity proof is more than 5 minutes old")
        if age < -MAX_FUTURE_SKEW_SECONDS:
            raise NotAuthenticated("the identity proof is dated more than 60 seconds in the future")

    @staticmethod
    def _answer(status: int, payload: bytes) -> StsAnswer:
        if status >= 500 or b"<Code>Throttling<" in payload:
            raise ServiceUnavailable("STS could not verify the caller's identity; try again")
        if status != 200:
            if any(code in payload for code in _STS_CALLER_ERRORS):
                reason = payload.split(b"<Code>", 1)[1].split(b"<", 1)[0].decode("ascii", "replace")
                raise NotAuthenticated(f"STS did not accept the identity proof ({reason})")
            raise NotAuthenticated("STS did not accept the identity proof")
        try:
            root = ElementTree.fromstring(payload)  # noqa: S314 - the configured STS endpoint's answer
            result = root.find(f"{_STS_NS}GetCallerIdentityResult")
            if result is None:
                raise ValueError("no result")
            fields = {child.tag.removeprefix(_STS_NS): (child.text or "") for child in result}
        except (ElementTree.ParseError, ValueError):
            raise NotAuthenticated("STS's answer to the identity proof was not understood") from None
        if not fields.get("Arn") or not fields.get("Account"):
            raise NotAuthenticated("STS's answer to the identity proof names no caller")
        return StsAnswer(fields["Arn"], fields.get("UserId", ""), fields["Account"])


class StsProofIdentity:
    """`sts-proof` mode: the caller proves who it is with a signed sts:GetCallerIdentity bound to
    this server and to the request it travels with."""

    mode = "sts-proof"

    def __init__(self, verifier: StsProofVerifier) -> None:
        self._verifier = verifier

    def resolve(self, request: ServedRequest) -> Caller:
        binding = request_binding(request.method, request.route, request.body or b"")
        headers = request.headers
        answer = self._verifier.verify(headers.get(PROOF_HEADER), binding)
        identity = request.context.get("identity") or {}
        return build_caller(
            answer.arn,
            answer.user_id,
            answer.account,
            str(identity.get("sourceIp") or ""),
            headers.get("user-agent", ""),
        )
