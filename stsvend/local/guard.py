"""The guard in front of the local emulator: moto's server app, in the same process, wrapped in a
WSGI middleware that authenticates every request itself and lets through only requests that moto
will authorize, before moto sees them.

What moto 5.2.5 does that the guard must not rely on (read in `moto/core/authorization.py`,
`moto/core/responses.py`, `moto/moto_server/werkzeug_app.py` and the services' `urls.py`; check again
on an upgrade): its IAM check (`ActionAuthenticatorMixin._authenticate_and_authorize_action`) is
skipped, signature *and* permissions, when

1. its request counter is below `INITIAL_NO_AUTH_ACTION_COUNT` (unset means infinity; its control
   API `/moto-api/reset-auth`, which takes no credentials, sets it);
2. the `X-Amz-Target` header names one of its "public operations" (Cognito's `GetId`,
   `InitiateAuth`, ...), whatever the service the request is for and whatever it really does: for
   the query protocol (IAM, STS, EC2, SNS) the action comes from the body, so the header is free;
3. the request goes to a handler that never calls it: DynamoDB's 2011-12-05 API (any
   `X-Amz-Target` of a version up to `20111205`), the instance metadata paths (`/latest/meta-data/`,
   `/latest/api/`), SNS's certificate, the control API, and most services moto serves were never
   audited here;
4. the request is presigned: moto routes a request without an Authorization header by its
   "unsigned" rules (to S3 by default, whatever the credential scope says) and checks header
   signatures only.

And where it does check, it checks the action it will run by the name the caller spelled: moto
matches a policy's actions case-sensitively (`Deny iam:CreateAccessKey` does not match
`createAccessKey`) and takes the action from an `Action` parameter in the query, in any body that
reads as a form (gzip undone), or in a header, before `X-Amz-Target` (5). (Its request parser
happens to fail on a misspelled name today; the guard does not count on it.) And it checks the
resource (IAM's `RoleName`, STS's `RoleArn`) in one place and acts on it from another (6): with a
form body its `querystring` is the form alone, the URL's query unread, while the parser that gives
the operation its arguments reads query and form, the query's value first. S3's handlers check an
action from a table of the query's subresources that is not the operation they run (7).

So the guard decides:

- A control request (any path naming `moto-api`) needs the emulator's secret in `CONTROL_HEADER`,
  always. The stack's `reset-auth` to 0 switches enforcement on; it cannot be switched off again,
  and once on, every other request is refused unless moto's own enforcement is on too
  (`authorization_on`, read from moto's settings in this process): never a request answered with
  authentication by the guard but no authorization by moto (class 1).
- Before enforcement (the stack's bootstrap), every other request must be signed with the bootstrap
  key: `BOOTSTRAP_KEY_ID` with the emulator's secret as its secret access key.
- Once enforcing, every request must carry a SigV4 signature (Authorization header or presigned
  query) by a key moto holds: an active IAM user access key, or an unexpired assumed-role session
  presenting its session token. The signature is recomputed with botocore's signer over the request
  as received (method, raw path and query, the signed headers, the body's SHA-256) and compared;
  the date must be within 15 minutes (presigned: within its expiry); an `x-moto-account-id` header
  must name the key's own account.
- A signed request reaches moto only in a shape moto authorizes (`check_authorizable`): signed for
  a service in `SERVICES`, each served only through moto's authorizing dispatch (class 3), S3 not
  at all (class 7; nothing of stsvend calls it); no
  `X-Amz-Target` naming a public operation (class 2); an `X-Amz-Target` only where the service's
  protocol uses one and of that service's current API (`TARGETS`), with no `Action` beside it that
  moto would run instead; no path moto answers without authorization (class 3); one `Action`, an
  operation's own name, where there is no `X-Amz-Target` (class 5); its parameters in the query or
  in the body, never both (class 6).
- A verified presigned request is handed to moto as the same request header-signed by the same key
  (`as_header_signed`), so moto routes it by its signed service and authorizes it (class 4).

Anything else gets HTTP 403 with an AWS-style error body for the request's protocol and never
reaches moto; moto's own IAM enforcement stays on behind the guard. Run as the emulator's process:
`python -m stsvend.local.guard -H HOST -p PORT`, the secret in `SECRET_VARIABLE`.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import hmac
import io
import json
import os
import re
import sys
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

from stsvend.local.federation import Federation

CONTROL_HEADER = "X-Stsvend-Emulator-Control"
SECRET_VARIABLE = "STSVEND_EMULATOR_SECRET"
BOOTSTRAP_KEY_ID = "AKIALOCALBOOTSTRAP00"
MIN_SECRET_LENGTH = 32
MAX_SKEW = datetime.timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
MAX_BODY_BYTES = 16 * 1024 * 1024
ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\Z"
)
# Region and service are plain names: moto routes a request by them, and a dotted one can steer it
# to another of its apps.
_CREDENTIAL = re.compile(
    r"(?P<key>[A-Z0-9]{16,128})/(?P<date>[0-9]{8})/(?P<region>[a-z0-9-]{1,32})"
    r"/(?P<service>[a-z0-9-]{1,64})/aws4_request\Z"
)
_TIMESTAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z\Z")
_HEADER_NAME = re.compile(r"[a-z0-9-]+\Z")

# The services (by signing name, as the credential scope names them: moto routes a header-signed
# request by it) whose every route in moto 5.2.5 runs moto's IAM check: the query and JSON services
# through `BaseResponse.call_action` (path `/` only). Not S3: its handlers check an action from a
# coarse table of the query's subresources (the last one the table lists) and then run the first their
# own branches test, or one the table does not know: `PUT /bucket?policy&acl` is checked as
# s3:PutBucketAcl and runs PutBucketPolicy, `?encryption` is checked as s3:CreateBucket (class 7).
# What the local stack, its API and the ops commands call. Anything else is refused: most of moto's
# services were never audited, and some answer without any check.
SERVICES = frozenset({"sts", "iam", "ec2", "dynamodb", "monitoring", "logs", "sns", "cloudtrail", "kms"})
# The X-Amz-Target prefixes of those services' current APIs; a service not named takes none (its
# action is in the body or the path). DynamoDB needs one (moto routes by it: an older version goes
# to a handler that checks nothing, a missing one is a server error).
TARGETS: dict[str, dict[str, str]] = {  # service -> target prefix -> botocore's model of it
    "dynamodb": {"DynamoDB_20120810": "dynamodb", "DynamoDBStreams_20120810": "dynamodbstreams"},
    "logs": {"Logs_20140328": "logs"},
    "monitoring": {"GraniteServiceVersion20100801": "cloudwatch"},
    "cloudtrail": {"com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101": "cloudtrail"},
    # The identity-provider mode's issuer key (kms:Sign): moto routes `/` to call_action.
    "kms": {"TrentService": "kms"},
}
# The models whose operations may be named in an `Action` parameter.
_QUERY_MODELS = ("sts", "iam", "ec2", "sns", "cloudwatch")
_TARGET_REQUIRED = frozenset({"dynamodb"})
# moto's `ActionAuthenticatorMixin.PUBLIC_OPERATIONS` (5.2.5): with one of these in X-Amz-Target it
# checks neither signature nor permissions. Merged with the list of the moto installed, if any.
PUBLIC_OPERATIONS = (
    "AWSCognitoIdentityService.GetId",
    "AWSCognitoIdentityService.GetOpenIdToken",
    "AWSCognitoIdentityProviderService.ConfirmSignUp",
    "AWSCognitoIdentityProviderService.GetUser",
    "AWSCognitoIdentityProviderService.ForgotPassword",
    "AWSCognitoIdentityProviderService.InitiateAuth",
    "AWSCognitoIdentityProviderService.SignUp",
)
# Paths moto sends to its instance metadata handler (no check) whatever the request is signed for.
_UNCHECKED_PATH_PREFIXES = ("/latest/meta-data", "/latest/api")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# The query parameters of a presigned request, dropped when it is handed on header-signed.
_PRESIGNED_PARAMETERS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)


@dataclass(frozen=True)
class Key:
    """An access key the emulator knows, with what a request signed by it must match."""

    secret_access_key: str
    account_id: str | None  # None: any account (the bootstrap key)
    session_token: str | None = None
    expires: datetime.datetime | None = None  # UTC
    active: bool = True


KeyLookup = Callable[[str], "Key | None"]
Clock = Callable[[], datetime.datetime]


class Refusal(Exception):
    """Why a request is refused. `kind` picks the AWS error code for the request's protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# kind -> error code, per protocol: what AWS answers for the same failure.
_CODES = {
    "query": {
        "missing": "MissingAuthenticationToken",
        "unknown_key": "InvalidClientTokenId",
        "signature": "SignatureDoesNotMatch",
        "token": "InvalidClientTokenId",
        "expired": "ExpiredToken",
        "control": "AccessDenied",
        "denied": "AccessDenied",
    },
    "ec2": {
        "missing": "MissingAuthenticationToken",
        "unknown_key": "AuthFailure",
        "signature": "AuthFailure",
        "token": "AuthFailure",
        "expired": "RequestExpired",
        "control": "UnauthorizedOperation",
        "denied": "UnauthorizedOperation",
    },
    "json": {
        "missing": "MissingAuthenticationTokenException",
        "unknown_key": "UnrecognizedClientException",
        "signature": "InvalidSignatureException",
        "token": "UnrecognizedClientException",
        "expired": "ExpiredTokenException",
        "control": "AccessDeniedException",
        "denied": "AccessDeniedException",
    },
    "rest-xml": {
        "missing": "AccessDenied",
        "unknown_key": "InvalidAccessKeyId",
        "signature": "SignatureDoesNotMatch",
        "token": "InvalidToken",
        "expired": "ExpiredToken",
        "control": "AccessDenied",
        "denied": "AccessDenied",
    },
}


@dataclass(frozen=True)
class _Signature:
    key_id: str
    timestamp: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    session_token: str | None
    presigned: bool
    expires_seconds: int


def _header(environ: dict[str, Any], name: str) -> str | None:
    """A request header by its lower-case name, as the WSGI server passed it."""
    if name == "content-type":
        value = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        value = environ.get("CONTENT_LENGTH")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)


def _raw_path_and_query(environ: dict[str, Any]) -> tuple[str, str]:
    """The path as sent (still percent-encoded, as it was signed) and the raw query string."""
    query = str(environ.get("QUERY_STRING", ""))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return quote(str(environ.get("PATH_INFO", "")) or "/", safe="/~"), query
    path = str(raw).partition("?")[0]
    if path.startswith(("http://", "https://")):  # an absolute-form request line
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    return path or "/", query


def _only(pairs: list[tuple[str, str]], name: str, required: bool = True) -> str | None:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise Refusal("signature", f"the query carries {name} more than once")
    if not values:
        if required:
            raise Refusal("missing", f"a presigned request needs {name}")
        return None
    return values[0]


def parse_signature(environ: dict[str, Any]) -> _Signature:
    """The SigV4 signature a request carries (header or presigned query), checked for form only."""
    authorization = _header(environ, "authorization")
    _, query = _raw_path_and_query(environ)
    pairs = parse_qsl(query, keep_blank_values=True)
    presigned = any(k in ("X-Amz-Signature", "X-Amz-Credential") for k, _ in pairs)
    if authorization is not None and presigned:
        raise Refusal("signature", "a request is signed in its Authorization header or its query, not both")
    if presigned:
        if _only(pairs, "X-Amz-Algorithm") != ALGORITHM:
            raise Refusal("missing", f"only {ALGORITHM} signatures are accepted")
        credential = str(_only(pairs, "X-Amz-Credential"))
        signed = str(_only(pairs, "X-Amz-SignedHeaders"))
        signature = str(_only(pairs, "X-Amz-Signature"))
        timestamp = str(_only(pairs, "X-Amz-Date"))
        expires = str(_only(pairs, "X-Amz-Expires"))
        token = _only(pairs, "X-Amz-Security-Token", required=False)
        if not expires.isdigit() or not 0 < int(expires) <= MAX_PRESIGNED_EXPIRES:
            raise Refusal("signature", f"X-Amz-Expires must be 1-{MAX_PRESIGNED_EXPIRES} seconds")
        if not re.fullmatch(r"[0-9a-f]{64}", signature):
            raise Refusal("signature", "X-Amz-Signature is not a SigV4 signature")
        expires_seconds = int(expires)
    elif authorization is not None:
        match = _AUTHORIZATION.match(authorization.strip())
        if match is None:
            raise Refusal("missing", f"the Authorization header is not an {ALGORITHM} signature")
        credential, signed, signature = match["credential"], match["headers"], match["signature"]
        timestamp = _header(environ, "x-amz-date") or ""
        token = _header(environ, "x-amz-security-token")
        expires_seconds = 0
    else:
        raise Refusal("missing", "the request is not signed: no Authorization header, no presigned query")
    scope = _CREDENTIAL.match(credential)
    if scope is None:
        raise Refusal("signature", "the credential is not KEY/yyyymmdd/region/service/aws4_request")
    headers = tuple(signed.split(";"))
    if list(headers) != sorted(set(headers)) or not all(_HEADER_NAME.match(h) for h in headers):
        raise Refusal("signature", "the signed headers are not a sorted list of header names")
    if "host" not in headers:
        raise Refusal("signature", "the signature does not cover the host header")
    if not presigned and "x-amz-date" not in headers:
        raise Refusal("signature", "the signature does not cover the x-amz-date header")
    if not presigned and token is not None and "x-amz-security-token" not in headers:
        raise Refusal("signature", "the signature does not cover the x-amz-security-token header")
    if not _TIMESTAMP.match(timestamp) or timestamp[:8] != scope["date"]:
        raise Refusal("signature", "X-Amz-Date is missing, malformed or not the credential's date")
    return _Signature(
        key_id=scope["key"],
        timestamp=timestamp,
        region=scope["region"],
        service=scope["service"],
        signed_headers=headers,
        signature=signature,
        session_token=token,
        presigned=presigned,
        expires_seconds=expires_seconds,
    )


def expected_signature(environ: dict[str, Any], body: bytes, signed: _Signature, key: Key) -> str:
    """The signature `key` gives this request, computed by botocore's SigV4 signer."""
    headers: dict[str, str] = {}
    for name in signed.signed_headers:
        value = _header(environ, name)
        if value is None:
            raise Refusal("signature", f"the signed header {name} is not in the request")
        headers[name] = value
    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is not None and content_sha256 != hashlib.sha256(body).hexdigest():
        if content_sha256 != UNSIGNED_PAYLOAD or signed.service != "s3":
            raise Refusal("signature", "the body is not the one x-amz-content-sha256 names")
    path, query = _raw_path_and_query(environ)
    if signed.presigned:
        query = "&".join(p for p in query.split("&") if p.partition("=")[0] != "X-Amz-Signature")
    signer, request = _signer(environ, path, query, headers, body, signed, key, signed.presigned)
    return str(signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request))


def _signer(
    environ: dict[str, Any],
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    signed: _Signature,
    key: Key,
    presigned: bool,
) -> tuple[Any, Any]:
    """botocore's SigV4 signer for `signed`'s key, scope and date, and the request it signs."""
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        url=f"http://emulator{path}" + (f"?{query}" if query else ""),
        headers=headers,
        data=body,
    )
    request.context["timestamp"] = signed.timestamp
    credentials = Credentials(signed.key_id, key.secret_access_key, signed.session_token)
    s3 = signed.service == "s3"
    signer_class: type[SigV4Auth]
    if presigned:
        signer_class = S3SigV4QueryAuth if s3 else SigV4QueryAuth
    else:
        signer_class = S3SigV4Auth if s3 else SigV4Auth
    return signer_class(credentials, signed.service, signed.region), request


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def verify(
    environ: dict[str, Any], body: bytes, lookup: KeyLookup, now: datetime.datetime
) -> tuple[_Signature, Key]:
    """Raise `Refusal` unless the request is SigV4-signed, now, by a key `lookup` knows; return the
    signature and the key."""
    signed = parse_signature(environ)
    key = lookup(signed.key_id)
    if key is None or not key.active:
        raise Refusal("unknown_key", "The security token included in the request is invalid.")
    if key.session_token is None and signed.session_token is not None:
        raise Refusal("token", "a long-term access key takes no session token")
    if key.session_token is not None and not hmac.compare_digest(
        (signed.session_token or "").encode(), key.session_token.encode()
    ):
        raise Refusal("token", "The security token included in the request is invalid.")
    if key.expires is not None and _utc(key.expires) <= now:
        raise Refusal("expired", "The security token included in the request is expired")
    try:
        when = datetime.datetime.strptime(signed.timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise Refusal("signature", "X-Amz-Date is not a date") from None
    if signed.presigned:
        if when - now > MAX_SKEW or now > when + datetime.timedelta(seconds=signed.expires_seconds):
            raise Refusal("signature", "the presigned request is expired or not yet valid")
    elif abs(now - when) > MAX_SKEW:
        raise Refusal("signature", "Signature expired: the request's date is more than 15 minutes off")
    if not hmac.compare_digest(expected_signature(environ, body, signed, key), signed.signature):
        raise Refusal(
            "signature",
            "The request signature we calculated does not match the signature you provided.",
        )
    account = _header(environ, "x-moto-account-id")
    if account is not None and key.account_id is not None and account != key.account_id:
        raise Refusal("unknown_key", "the access key is not in the account the request names")
    return signed, key


@functools.cache
def _public_operations() -> frozenset[str]:
    names = set(PUBLIC_OPERATIONS)
    try:
        from moto.core.authorization import ActionAuthenticatorMixin
    except ImportError:  # the guard on its own (unit tests without moto's server extras)
        pass
    else:
        names.update(str(name) for name in ActionAuthenticatorMixin.PUBLIC_OPERATIONS)
    return frozenset(name.lower() for name in names)


def check_authorizable(environ: dict[str, Any], body: bytes, signed: _Signature) -> None:
    """Raise `Refusal` unless moto will run its IAM check on this (verified) request for the action
    it then performs: see the module's docstring, classes 2 and 3."""
    target = _header(environ, "x-amz-target")
    if target is not None:
        named = {part.strip().lower() for part in target.split(",")}
        if named & _public_operations() or any(
            op.partition(".")[0] in target.lower() for op in _public_operations()
        ):
            raise Refusal(
                "denied",
                f"X-Amz-Target {target!r} names an operation the emulator answers without authorization",
            )
    if signed.service not in SERVICES:
        raise Refusal(
            "denied", f"the local emulator serves {', '.join(sorted(SERVICES))}, not {signed.service!r}"
        )
    path = str(environ.get("PATH_INFO", ""))
    raw, query = _raw_path_and_query(environ)
    if any(p.lower().startswith(_UNCHECKED_PATH_PREFIXES) for p in (path, raw)):
        raise Refusal("denied", "the emulator answers this path without authorization")
    if path != "/" or raw != "/":
        raise Refusal("denied", f"a {signed.service} request goes to path /")
    # moto authorizes with the parameters of a form body (its `querystring`, the URL's query unread
    # when there is a form) and then acts with the query's first (its parser reads query and form,
    # query first): `RoleName` in both would have it check one role and change another (class 6).
    if body and _parameters(query, signed.presigned):
        raise Refusal(
            "denied", f"a {signed.service} request carries its parameters in its query or its body, not both"
        )
    content_type = (_header(environ, "content-type") or "").strip().lower()
    if content_type.startswith("multipart/"):
        raise Refusal("denied", f"a {signed.service} request is not multipart")
    actions = _actions(environ, body, query)
    if target is not None:
        prefix, dot, operation = target.rpartition(".")
        model = TARGETS.get(signed.service, {}).get(prefix)
        if not dot or model is None or operation not in _operations(model):
            expected = " or ".join(f"{p}.Operation" for p in TARGETS.get(signed.service, {})) or "none"
            raise Refusal("denied", f"X-Amz-Target {target!r} is not one of {signed.service}'s ({expected})")
        # moto takes the action from an `Action` parameter, when there is one, before X-Amz-Target.
        if actions or content_type.startswith(_FORMS):
            raise Refusal(
                "denied", "a request naming its operation in X-Amz-Target takes no Action parameter"
            )
        return
    if signed.service in _TARGET_REQUIRED:
        raise Refusal("denied", f"a {signed.service} request names its operation in X-Amz-Target")
    # moto matches a policy's actions case-sensitively but runs `terminateInstances` as
    # TerminateInstances: only an operation's own name, once, is handed on.
    if len(set(actions)) != 1 or actions[0] not in _query_operations():
        raise Refusal("denied", "a request names one operation, by its name, in one Action parameter")


def _parameters(query: str, presigned: bool) -> list[str]:
    """The query's parameters moto reads (a presigned request's signature parameters are dropped
    before it is handed on)."""
    parts = [part for part in query.split("&") if part]
    if presigned:
        parts = [part for part in parts if unquote(part.partition("=")[0]) not in _PRESIGNED_PARAMETERS]
    return parts


def _actions(environ: dict[str, Any], body: bytes, query: str) -> list[str]:
    """Every `Action` moto might take the operation from: the query, the body read as a form
    (moto reads one whatever its Content-Type, after undoing a gzip Content-Encoding), a header
    (moto's last resort)."""
    values = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "Action"]
    bodies = [body]
    if "gzip" in (_header(environ, "content-encoding") or "").lower():
        bodies.append(_gunzipped(body))
    for each in bodies:
        try:
            text = each.decode("utf-8")
        except UnicodeDecodeError:
            continue
        values += [v for k, v in parse_qsl(text, keep_blank_values=True) if k == "Action"]
    header = _header(environ, "action")
    return values if header is None else [*values, header]


def _gunzipped(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_BODY_BYTES)
    except zlib.error:
        raise Refusal("denied", "the body is not the gzip its Content-Encoding names") from None
    if inflater.unconsumed_tail:
        raise Refusal("denied", f"the body inflates to more than {MAX_BODY_BYTES} bytes")
    return data


@functools.cache
def _operations(model: str) -> frozenset[str]:
    """The operation names of an AWS service, as botocore's model spells them."""
    from stsvend import aws

    return aws.operation_names(model)


def _query_operations() -> frozenset[str]:
    return frozenset().union(*(_operations(model) for model in _QUERY_MODELS))


def as_header_signed(environ: dict[str, Any], body: bytes, signed: _Signature, key: Key) -> None:
    """Turn a verified presigned request into the same request signed in its headers by the same
    key (the date and scope of the presigned one), for moto: it routes a request without an
    Authorization header by its unsigned rules and checks header signatures only."""
    path, query = _raw_path_and_query(environ)
    query = "&".join(
        part
        for part in query.split("&")
        if part and unquote(part.partition("=")[0]) not in _PRESIGNED_PARAMETERS
    )
    headers = {
        "host": _header(environ, "host") or "",
        "x-amz-date": signed.timestamp,
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if signed.session_token is not None:
        headers["x-amz-security-token"] = signed.session_token
    signer, request = _signer(environ, path, query, headers, body, signed, key, presigned=False)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    environ["HTTP_AUTHORIZATION"] = (
        f"{ALGORITHM} Credential={signer.scope(request)}, SignedHeaders={names}, Signature={signature}"
    )
    for name, value in headers.items():
        if name != "host":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ["QUERY_STRING"] = query
    for uri in ("RAW_URI", "REQUEST_URI"):
        if uri in environ:
            environ[uri] = path + (f"?{query}" if query else "")
    # What moto now routes by and checks: refuse rather than hand on anything malformed.
    if parse_signature(environ).key_id != signed.key_id:
        raise Refusal("signature", "the presigned request could not be handed on signed in its headers")


def moto_key(key_id: str) -> Key | None:
    """The key `key_id` as moto holds it: an IAM user's access key or an assumed-role session."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    # Copies: moto's request threads may add to these while we read.
    for account_id, account in list(iam_backends.items()):
        for backend in list(account.values()):
            for user in list(backend.users.values()):
                for access_key in list(user.access_keys):
                    if access_key.access_key_id == key_id:
                        return Key(
                            access_key.secret_access_key, account_id, active=access_key.status == "Active"
                        )
    for account_id, sessions in list(sts_backends.items()):
        for sts in list(sessions.values()):
            for role in list(sts.assumed_roles):
                if role.access_key_id == key_id:
                    return Key(role.secret_access_key, account_id, role.session_token, role.expiration)
    return None


def moto_authorizes() -> bool:
    """Whether moto, in this process, checks every request it is handed (its request counter has
    reached `INITIAL_NO_AUTH_ACTION_COUNT`): see `ActionAuthenticatorMixin`."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return bool(ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


_PROTOCOLS = {
    "ec2": "ec2",
    "s3": "rest-xml",
    "sts": "query",
    "iam": "query",
    "sns": "query",
    "dynamodb": "json",
    "logs": "json",
    "cloudtrail": "json",
    "kms": "json",
}


def _protocol(environ: dict[str, Any]) -> str:
    """The protocol whose error body the caller's SDK parses: by the signed service when known
    (a forged X-Amz-Target does not turn STS into JSON), else by the request's shape."""
    try:
        service = parse_signature(environ).service
    except Refusal:
        service = ""
    if service in _PROTOCOLS:
        return _PROTOCOLS[service]
    content_type = (_header(environ, "content-type") or "").strip().lower()
    if content_type.startswith(_FORMS):  # a query-protocol body, whatever header came with it
        return "query"
    if _header(environ, "x-amz-target") is not None or content_type.startswith(
        ("application/x-amz-json", "application/json")
    ):
        return "json"
    return "query"


def error_response(environ: dict[str, Any], refusal: Refusal) -> tuple[str, list[tuple[str, str]], bytes]:
    """HTTP 403 with the error body an AWS SDK parses for the request's protocol."""
    protocol = _protocol(environ)
    code = _CODES[protocol][refusal.kind]
    request_id = str(uuid.uuid4())
    message = escape(refusal.message)
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "json":
        body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": refusal.message})
        headers += [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code)]
    elif protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        headers.append(("Content-Type", "application/xml"))
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers.append(("Content-Type", "text/xml"))
    data = body.encode("utf-8")
    return "403 Forbidden", [*headers, ("Content-Length", str(len(data)))], data


def _is_federation(environ: dict[str, Any], body: bytes) -> bool:
    from stsvend.local.webidentity import is_federation

    _, query = _raw_path_and_query(environ)
    return is_federation(query, body, _header(environ, "x-amz-target"))


def _is_control(environ: dict[str, Any]) -> bool:
    # moto serves its control API for any path starting /moto-api (and its favicon); anything that
    # names it in any spelling is treated as control.
    path = str(environ.get("PATH_INFO", "")).lower()
    raw, _ = _raw_path_and_query(environ)
    return "moto-api" in path or "moto-api" in raw.lower() or path.rstrip("/").endswith("favicon.ico")


class Guard:
    """WSGI middleware: authenticate every request (see the module's docstring), then hand it on."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        secret: str,
        lookup: KeyLookup,
        clock: Clock | None = None,
        log: Callable[[str], None] | None = None,
        authorization_on: Callable[[], bool] | None = None,
    ) -> None:
        """`authorization_on` tells whether the app behind (moto) checks IAM permissions now; once
        enforcing, no request is handed on while it says no."""
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the emulator's secret must be at least {MIN_SECRET_LENGTH} characters")
        self._app = app
        self._secret = secret
        self._lookup = lookup
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._authorization_on = authorization_on
        self.enforcing = False
        self._signin: Federation | None = None

    def _bootstrap_lookup(self, key_id: str) -> Key | None:
        return Key(self._secret, None) if key_id == BOOTSTRAP_KEY_ID else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")) == "/federation":
            # The console sign-in stand-in (stsvend.local.federation): its own checks, no SigV4.
            self._signin = self._signin or Federation()
            return self._signin.serve(environ, start_response)
        try:
            body = self._read_body(environ)
            if _is_control(environ):
                self._check_control(environ, body)
                # moto needs no secret, and its request recording must not keep it.
                environ.pop("HTTP_" + CONTROL_HEADER.upper().replace("-", "_"), None)
            elif _is_federation(environ, body):
                # moto reads no web identity token: stsvend.local.webidentity checks and answers.
                return self._federation(environ, body, start_response)
            else:
                lookup = self._lookup if self.enforcing else self._bootstrap_lookup
                signed, key = verify(environ, body, lookup, self._clock())
                check_authorizable(environ, body, signed)
                if self.enforcing and self._authorization_on is not None and not self._authorization_on():
                    raise Refusal("denied", "the emulator's IAM enforcement is off: nothing is answered")
                if signed.presigned:
                    as_header_signed(environ, body, signed, key)
        except Refusal as refusal:
            self._log(
                f"stsvend guard: refused {environ.get('REQUEST_METHOD')!r} {environ.get('PATH_INFO')!r}:"
                f" {refusal.kind}: {refusal.message}"
            )
            status, headers, data = error_response(environ, refusal)
            start_response(status, headers)
            return [data]
        return self._app(environ, start_response)

    def _federation(
        self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        from stsvend.local import webidentity

        _, query = _raw_path_and_query(environ)
        status, data, refused = webidentity.answer(query, body, _header(environ, "x-amz-target"))
        if refused is not None:
            self._log(f"stsvend guard: refused AssumeRoleWithWebIdentity: {refused}")
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
        headers = [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))]
        start_response(f"{status} {reason}", headers)
        return [data]

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        """The whole body, put back as a fresh stream for moto (which reads it again)."""
        raw_length = str(environ.get("CONTENT_LENGTH") or "").strip()
        stream = environ["wsgi.input"]
        if raw_length:
            if not (raw_length.isascii() and raw_length.isdigit()):
                raise Refusal("signature", "Content-Length is not a number")
            if int(raw_length) > MAX_BODY_BYTES:
                raise Refusal("signature", f"the body is larger than {MAX_BODY_BYTES} bytes")
            body = bytes(stream.read(int(raw_length)))
        elif environ.get("wsgi.input_terminated"):
            body = bytes(stream.read(MAX_BODY_BYTES + 1))
            if len(body) > MAX_BODY_BYTES:
                raise Refusal("signature", f"the body is larger than {MAX_BODY_BYTES} bytes")
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def _check_control(self, environ: dict[str, Any], body: bytes) -> None:
        given = _header(environ, CONTROL_HEADER.lower()) or ""
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise Refusal("control", "the emulator's control API is for the local stack only")
        if str(environ.get("PATH_INFO", "")).rstrip("/") != "/moto-api/reset-auth":
            return
        try:
            count = float(body.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise Refusal("control", "reset-auth takes a number") from None
        if count == 0:
            self.enforcing = True  # before moto hears of it: never a moment with moto on, guard off
        elif self.enforcing:
            raise Refusal("control", "IAM enforcement is on and stays on")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto in server mode behind stsvend's guard")
    parser.add_argument("-H", "--host", required=True)
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    secret = os.environ.pop(SECRET_VARIABLE, "")
    if len(secret) < MIN_SECRET_LENGTH:
        sys.exit(f"stsvend guard: {SECRET_VARIABLE} must hold at least {MIN_SECRET_LENGTH} characters")
    # moto would take every request's account from it, not from the key the guard checked.
    os.environ.pop("MOTO_ACCOUNT_ID", None)
    # Whatever moto writes (its request recording) is for this user only.
    os.umask(0o077)
    # moto builds some URLs from its port (as its own `moto_server` sets it).
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    guarded = Guard(
        DomainDispatcherApplication(create_backend_app), secret, moto_key, authorization_on=moto_authorizes
    )
    run_simple(args.host, args.port, guarded, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
