"""Who is calling: the `Caller` of DESIGN.md section 2, from API Gateway or from an STS proof."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from xml.etree import ElementTree

from chalicelib.arns import parse_caller_arn
from chalicelib.errors import NotAuthenticated, ServiceUnavailable

PROOF_HEADER = "x-stsvend-identity"
SERVER_ID_HEADER = "x-stsvend-server-id"
GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
MAX_PROOF_BYTES = 8192
MAX_CLOCK_SKEW_SECONDS = 300
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
# Headers the server sets itself when forwarding; the rest of the signed request goes as it came.
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "expect"})
# The whole Authorization header, so no decoy `SignedHeaders=` elsewhere in it can be read instead.
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[A-Za-z0-9/_-]+, ?SignedHeaders=([a-z0-9;-]+), ?Signature=[0-9a-f]{64}"
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,64}")  # an RFC 9110 token, lower-cased
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")


@dataclass(frozen=True)
class Caller:
    arn: str
    principal_arn: str
    account_id: str
    user_id: str
    name: str
    kind: str
    session_name: str | None
    source_ip: str
    user_agent: str

    @property
    def unique_id(self) -> str:
        """The principal's unique id without the session part: AROA… for roles, AIDA… for users."""
        return self.user_id.split(":", 1)[0]


def build_caller(arn: str, user_id: str, account_id: str, source_ip: str, user_agent: str) -> Caller:
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
        kind=parsed.kind,
        session_name=parsed.session_name,
        source_ip=source_ip,
        user_agent=user_agent,
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
    )


class HttpPoster(Protocol):
    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class StsAnswer:
    arn: str
    user_id: str
    account: str


class StsProofVerifier:
    """Checks an `X-Stsvend-Identity` proof and asks STS whose it is (the Vault AWS-auth pattern).

    Only `sts_endpoint`, fixed by configuration, is ever contacted: the proof's URL must name it.
    """

    def __init__(
        self,
        sts_endpoint: str,
        server_id: str,
        post: HttpPoster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = sts_endpoint.rstrip("/")
        self._server_id = server_id
        self._post = post
        self._clock = clock

    def verify(self, header_value: str | None) -> StsAnswer:
        proof = self._decode(header_value)
        headers = self._check(proof)
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
        if not isinstance(proof, dict) or set(proof) != {"method", "url", "headers", "body"}:
            raise NotAuthenticated("the identity proof must have exactly method, url, headers, body")
        return proof

    def _check(self, proof: dict[str, Any]) -> dict[str, str]:
        raw_headers = proof["headers"]
        if not isinstance(raw_headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_headers.items()
        ):
            raise NotAuthenticated("the identity proof's headers must be a map of strings")
        if proof["method"] != "POST":
            raise NotAuthenticated("the identity proof must be a POST")
        url = proof["url"]
        if url not in (self._endpoint, self._endpoint + "/"):
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
            raise NotAuthenticated("the identity proof is not SigV4-signed")
        signed = authorization.group(1).split(";")
        if SERVER_ID_HEADER not in signed:
            raise NotAuthenticated("the identity proof does not sign X-Stsvend-Server-Id")
        if headers.get(SERVER_ID_HEADER) != self._server_id:
            raise NotAuthenticated("the identity proof is for another server id")
        self._check_date(headers.get("x-amz-date", ""))
        # Only what the signature covers goes to STS (the signing algorithm also needs the
        # authorization header); Host and framing headers are the server's own.
        return {
            k: v
            for k, v in headers.items()
            if (k in signed or k == "authorization") and k not in _HOP_HEADERS
        }

    def _check_date(self, amz_date: str) -> None:
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise NotAuthenticated("the identity proof has no valid X-Amz-Date") from None
        if abs(self._clock() - signed_at.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
            raise NotAuthenticated("the identity proof is more than 5 minutes old or in the future")

    @staticmethod
    def _answer(status: int, payload: bytes) -> StsAnswer:
        if status >= 500 or b"<Code>Throttling" in payload:
            raise ServiceUnavailable("STS could not verify the caller's identity; try again")
        if status != 200:
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
