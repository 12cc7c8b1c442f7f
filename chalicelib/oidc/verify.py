"""Verify a CI system's OIDC token against the configured issuers (PyJWT with its crypto extra).

Imported only by the OIDC route. The order of checks is the defence:

1. the Authorization header is capped in size and must be one compact JWS before anything parses it;
2. the header and payload are parsed strictly (a repeated key is refused), the header's parameters
   are a closed list: `jku`, `x5u`, `jwk`, `x5c` are never followed and `crit` or `b64` refuse the
   token; `alg` must be asymmetric and `kid` present;
3. the unverified `iss` only selects a configured issuer by exact match: an unknown issuer costs
   no fetch, and nothing in the token names where keys come from;
4. the key is the configured issuer's, from its JWKS location only, pinned by `kid` and by key type
   (and curve) for the header's `alg`; an unknown `kid` refetches the JWKS at most once a minute
   per issuer;
5. PyJWT verifies the signature with that one algorithm, then `exp` (required), `nbf`, `iat`, `iss`
   and `aud` (required: one of the issuer's audiences); stsvend then holds the token's lifetime and
   age to the issuer's limits and its pinned claims (a shared issuer's tenant).

PyJWT is used in chalicelib.oidc.signature alone, loaded with the route (chalicelib.oidc.vend).
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.errors import CallerNotAllowed, ServiceUnavailable, TokenRejected
from chalicelib.jsontext import JsonTextError, loads_strict
from chalicelib.oidc.config import ASYMMETRIC_ALGORITHMS, Issuer, OidcConfig, claim_text

# GitHub's and GitLab's tokens are 1-2 KB; a header over this is refused before it is parsed.
MAX_TOKEN_BYTES = 8 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024  # a discovery document or JWKS
MAX_KEYS = 32
FETCH_TIMEOUT_SECONDS = 3.0
JWKS_TTL_SECONDS = 3600.0
# At most one fetch of an issuer's JWKS per interval, however many unknown `kid`s arrive.
REFETCH_INTERVAL_SECONDS = 60.0
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}")
_KID = re.compile(r"[\x21-\x7e]{1,256}")
_HEADER_PARAMETERS = frozenset({"alg", "kid", "typ", "x5t", "x5t#S256"})
_NEVER_FOLLOWED = ("jku", "x5u", "jwk", "x5c")
# The key type (and curve) each algorithm family must have: a key is never used across families.
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{f"{p}{n}": ("RSA", None) for p in ("RS", "PS") for n in ("256", "384", "512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
MIN_RSA_BITS = 2048
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

Fetch = Callable[[str], bytes]


class FetchError(Exception):
    pass


def _allowed_url(url: str) -> bool:
    if url.startswith("https://"):
        return "@" not in url[len("https://") :].split("/", 1)[0]
    if url.startswith("http://"):
        # The local stack's issuer. Never inside Lambda, where loopback is the Runtime API's address:
        # a grants-table entry must not turn a key fetch into a read of the next invocation.
        if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
            return False
        host = url[len("http://") :].split("/", 1)[0]
        return host.rsplit(":", 1)[0] in _LOOPBACK_HOSTS
    return False


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """Certificates and host names verified against the system's CAs, as urllib's default does;
    made on the first https fetch and kept (loading the CAs is the costly part)."""
    return ssl.create_default_context()


def http_get(url: str) -> bytes:
    """GET `url` (https, or http to a loopback address) with the standard library's HTTP client,
    which follows no redirect and consults no proxy: a timeout for connecting and each read, a
    deadline for the whole exchange (status line and headers included: at the deadline the socket
    is shut, so a server that trickles bytes cannot hold the fetch open), only a 200 answer, and at
    most MAX_DOCUMENT_BYTES."""
    if not _allowed_url(url):
        raise FetchError(f"refusing to fetch {url[:100]!r}")
    scheme, _, rest = url.partition("://")
    authority, _, path = rest.partition("/")
    connection = (
        http.client.HTTPSConnection(authority, timeout=FETCH_TIMEOUT_SECONDS, context=_tls_context())
        if scheme == "https"
        else http.client.HTTPConnection(authority, timeout=FETCH_TIMEOUT_SECONDS)
    )
    expired = threading.Event()
    watchdog: threading.Timer | None = None
    try:
        connection.connect()
        sock = connection.sock

        def expire() -> None:
            expired.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        watchdog = threading.Timer(2 * FETCH_TIMEOUT_SECONDS, expire)
        watchdog.daemon = True
        watchdog.start()
        connection.request("GET", "/" + path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise FetchError(f"{url} answered {response.status}")
        body = b""
        while len(body) <= MAX_DOCUMENT_BYTES:
            chunk = response.read1(16 * 1024)
            if expired.is_set():
                break
            if not chunk:
                return body
            body += chunk
        else:
            raise FetchError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        raise FetchError(f"{url} was too slow")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise FetchError(f"{url} was too slow") from None
        raise FetchError(f"{url}: {str(exc)[:200]}") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _b64json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = loads_strict(raw)
    except (binascii.Error, ValueError, JsonTextError):
        raise TokenRejected(f"the token's {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"the token's {what} is not a JSON object")
    return value


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer` header, checked in size and shape before parsing."""
    if not authorization:
        raise TokenRejected("an Authorization: Bearer <OIDC token> header is required")
    if len(authorization) > MAX_TOKEN_BYTES + 7:
        raise TokenRejected(f"the token is over {MAX_TOKEN_BYTES} bytes")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _COMPACT_JWS.fullmatch(token):
        raise TokenRejected(
            "the Authorization header must be Bearer and one signed JWT (header.payload.signature)"
        )
    return token


class _Keys:
    """One issuer's JWKS: the raw keys by kid, when they were fetched, and the last attempt."""

    def __init__(self) -> None:
        self.by_kid: dict[str, Mapping[str, Any]] = {}
        self.fetched = float("-inf")
        self.attempted = float("-inf")
        self.jwks_uri: str | None = None
        self.prepared: dict[tuple[str, str], Any] = {}


class Verifier:
    """Verifies tokens; holds each configured issuer's discovery answer and JWKS (bounded)."""

    def __init__(
        self,
        fetch: Fetch = http_get,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[tuple[str, str | None], _Keys] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def verify(self, authorization: str | None, config: OidcConfig) -> tuple[Issuer, dict[str, Any]]:
        """The configured issuer and the verified claims, or TokenRejected / CallerNotAllowed."""
        token = bearer_token(authorization)
        header_segment, payload_segment, _ = token.split(".")
        header = _b64json(header_segment, "header")
        payload = _b64json(payload_segment, "payload")
        alg = _checked_header(header)
        iss = payload.get("iss")
        issuer = config.issuer_for(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenRejected("the token's issuer is not trusted by stsvend")
        if alg not in issuer.algorithms:
            raise TokenRejected(f"algorithm {alg} is not accepted for issuer {issuer.name}")
        key = self._key(issuer, header["kid"], alg)
        claims = self._decode(token, key, alg, issuer)
        for claim, values in issuer.required_claims.items():
            if claim_text(claims.get(claim)) not in values:
                raise CallerNotAllowed(
                    "no grant allows this caller",
                    detail=f"claim {claim} is not one the issuer {issuer.name} pins (another tenant?)",
                )
        return issuer, claims

    def _decode(self, token: str, key: Any, alg: str, issuer: Issuer) -> dict[str, Any]:
        from chalicelib.oidc import signature  # loaded with the route (chalicelib.oidc.vend)

        claims = signature.decode(token, key, alg, issuer)
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, iat)):
            raise TokenRejected("the token's exp and iat must be numbers")
        if self._clock() - iat > issuer.max_age_seconds + issuer.leeway_seconds:
            raise TokenRejected(f"the token is older than issuer {issuer.name} allows")
        if exp - iat > issuer.max_lifetime_seconds:
            raise TokenRejected(f"the token lives longer than issuer {issuer.name} allows")
        return claims

    # --- keys -------------------------------------------------------------------------------------

    def _key(self, issuer: Issuer, kid: str, alg: str) -> Any:
        with self._lock:
            keys = self._keys.setdefault((issuer.issuer, issuer.jwks_uri), _Keys())
            now = self._monotonic()
            stale = now - keys.fetched > JWKS_TTL_SECONDS
            unknown = kid not in keys.by_kid
            if (stale or unknown) and now - keys.attempted >= REFETCH_INTERVAL_SECONDS:
                keys.attempted = now
                try:
                    self._refresh(issuer, keys)
                    keys.fetched = now
                except FetchError as exc:
                    if not keys.by_kid:
                        raise ServiceUnavailable(
                            f"the signing keys of issuer {issuer.name} could not be fetched; try again",
                            detail=str(exc)[:300],
                        ) from None
            if not keys.by_kid:  # never fetched, or every fetch failed: an outage, not a bad token
                raise ServiceUnavailable(
                    f"the signing keys of issuer {issuer.name} could not be fetched; try again"
                )
            jwk = keys.by_kid.get(kid)
            if jwk is None:
                raise TokenRejected(f"the token's key id is not one of issuer {issuer.name}'s keys")
            prepared = keys.prepared.get((kid, alg))
            if prepared is None:
                prepared = keys.prepared[(kid, alg)] = _prepared_key(jwk, alg)
            return prepared

    def _get_json(self, url: str) -> dict[str, Any]:
        self.fetches += 1
        body = self._fetch(url)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise FetchError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            value = loads_strict(body)
        except (JsonTextError, ValueError) as exc:
            raise FetchError(f"{url} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise FetchError(f"{url} is not a JSON object")
        return value

    def _jwks_uri(self, issuer: Issuer, keys: _Keys) -> str:
        if issuer.jwks_uri is not None:
            return issuer.jwks_uri
        if keys.jwks_uri is None:
            document = self._get_json(issuer.issuer + "/.well-known/openid-configuration")
            uri = document.get("jwks_uri")
            # OpenID Connect Discovery 1.0 section 4.3: the document's issuer is exactly the issuer.
            if document.get("issuer") != issuer.issuer:
                raise FetchError("the discovery document names another issuer")
            if not isinstance(uri, str) or _origin(uri) != _origin(issuer.issuer) or not _allowed_url(uri):
                raise FetchError("the discovery document's jwks_uri is not on the issuer's own host")
            keys.jwks_uri = uri
        return keys.jwks_uri

    def _refresh(self, issuer: Issuer, keys: _Keys) -> None:
        document = self._get_json(self._jwks_uri(issuer, keys))
        entries = document.get("keys")
        if not isinstance(entries, list) or len(entries) > MAX_KEYS:
            raise FetchError(f"the JWKS must list at most {MAX_KEYS} keys")
        by_kid: dict[str, Mapping[str, Any]] = {}
        repeated: set[str] = set()
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("kid"), str):
                kid = entry["kid"]
                if kid in by_kid:
                    repeated.add(kid)  # which one would sign is ambiguous: neither is used
                by_kid[kid] = entry
        keys.by_kid = {k: v for k, v in by_kid.items() if k not in repeated}
        keys.prepared = {}


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].lower()}"


def _checked_header(header: Mapping[str, Any]) -> str:
    for name in _NEVER_FOLLOWED:
        if name in header:
            raise TokenRejected(f"the token's header carries {name}; stsvend takes keys from the issuer only")
    if "crit" in header or "b64" in header:
        raise TokenRejected("the token's header has critical extensions, which stsvend does not accept")
    unknown = set(header) - _HEADER_PARAMETERS
    if unknown:
        names = ", ".join(sorted(unknown))[:100]
        raise TokenRejected(f"the token's header has unknown parameter(s): {names}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenRejected("the token's algorithm is not accepted (asymmetric signatures only)")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise TokenRejected("the token's typ must be JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise TokenRejected("the token's header must name its key (kid)")
    return alg


def _prepared_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The public key for `alg`, if the JWK is of the algorithm's type (and curve) and for signing."""
    kty, curves = _KEY_TYPES[alg]
    problem = None
    if jwk.get("kty") != kty:
        problem = f"is a {str(jwk.get('kty'))[:10]} key, not {kty}"
    elif curves is not None and jwk.get("crv") not in curves:
        problem = f"is not on a curve for {alg}"
    elif jwk.get("alg") not in (None, alg):
        problem = f"is for {str(jwk.get('alg'))[:10]}"
    elif jwk.get("use") not in (None, "sig"):
        problem = "is not a signing key"
    elif any(k in jwk for k in ("d", "p", "q", "k")):
        problem = "holds private or symmetric key material"
    if problem is None:
        from chalicelib.oidc import signature  # loaded with the route (chalicelib.oidc.vend)

        key = signature.public_key(jwk, alg)
        if key is None:
            problem = "does not parse"
        elif kty == "RSA" and key.key_size < MIN_RSA_BITS:
            problem = f"is shorter than {MIN_RSA_BITS} bits"
        else:
            return key
    raise TokenRejected(f"the issuer's key for this token's kid {problem}; the token is not accepted")
