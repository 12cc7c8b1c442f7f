"""The guard in front of the local emulator: moto's server app, in the same process, wrapped in a
WSGI middleware that authenticates every request itself before moto sees it.

Why moto's own IAM enforcement is not enough (moto 5.2.5): it answers a request as a "public"
operation whenever its X-Amz-Target header names one (e.g. `AWSCognitoIdentityService.GetId`),
whatever the service, key and signature; its control API (`/moto-api/...`) takes no credentials and
can switch authentication off; and it checks header signatures only. So the guard decides:

- A control request (any path naming `moto-api`) needs the emulator's secret in `CONTROL_HEADER`,
  always. The stack's `reset-auth` to 0 switches enforcement on; it cannot be switched off again.
- Before enforcement (the stack's bootstrap), every other request must be signed with the bootstrap
  key: `BOOTSTRAP_KEY_ID` with the emulator's secret as its secret access key.
- Once enforcing, every request must carry a SigV4 signature (Authorization header or presigned
  query) by a key moto holds: an active IAM user access key, or an unexpired assumed-role session
  presenting its session token. The signature is recomputed with botocore's signer over the request
  as received (method, raw path and query, the signed headers, the body's SHA-256) and compared;
  the date must be within 15 minutes (presigned: within its expiry); an `x-moto-account-id` header
  must name the key's own account.

Anything else gets HTTP 403 with an AWS-style error body for the request's protocol and never
reaches moto; moto's own IAM enforcement stays on behind the guard. Run as the emulator's process:
`python -m stsvend.local.guard -H HOST -p PORT`, the secret in `SECRET_VARIABLE`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import io
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote
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
    },
    "ec2": {
        "missing": "MissingAuthenticationToken",
        "unknown_key": "AuthFailure",
        "signature": "AuthFailure",
        "token": "AuthFailure",
        "expired": "RequestExpired",
        "control": "UnauthorizedOperation",
    },
    "json": {
        "missing": "MissingAuthenticationTokenException",
        "unknown_key": "UnrecognizedClientException",
        "signature": "InvalidSignatureException",
        "token": "UnrecognizedClientException",
        "expired": "ExpiredTokenException",
        "control": "AccessDeniedException",
    },
    "rest-xml": {
        "missing": "AccessDenied",
        "unknown_key": "InvalidAccessKeyId",
        "signature": "SignatureDoesNotMatch",
        "token": "InvalidToken",
        "expired": "ExpiredToken",
        "control": "AccessDenied",
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
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

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
    if signed.presigned:
        signer_class = S3SigV4QueryAuth if s3 else SigV4QueryAuth
    else:
        signer_class = S3SigV4Auth if s3 else SigV4Auth
    signer = signer_class(credentials, signed.service, signed.region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def verify(environ: dict[str, Any], body: bytes, lookup: KeyLookup, now: datetime.datetime) -> None:
    """Raise `Refusal` unless the request is SigV4-signed, now, by a key `lookup` knows."""
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


_PROTOCOLS = {"ec2": "ec2", "s3": "rest-xml", "sts": "query", "iam": "query", "dynamodb": "json"}


def _protocol(environ: dict[str, Any]) -> str:
    """The protocol whose error body the caller's SDK parses: by the signed service when known
    (a forged X-Amz-Target does not turn STS into JSON), else by the request's shape."""
    try:
        service = parse_signature(environ).service
    except Refusal:
        service = ""
    if service in _PROTOCOLS:
        return _PROTOCOLS[service]
    if _header(environ, "x-amz-target") is not None:
        return "json"
    return (
        "json" if (_header(environ, "content-type") or "").startswith("application/x-amz-json") else "query"
    )


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
    ) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the emulator's secret must be at least {MIN_SECRET_LENGTH} characters")
        self._app = app
        self._secret = secret
        self._lookup = lookup
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
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
                verify(environ, body, lookup, self._clock())
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
            if not raw_length.isdigit():
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

    guarded = Guard(DomainDispatcherApplication(create_backend_app), secret, moto_key)
    run_simple(args.host, args.port, guarded, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
