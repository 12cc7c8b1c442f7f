"""AssumeRoleWithWebIdentity on the local stack, checked as STS checks it (the guard's hook).

moto 5.2.5 answers any AssumeRoleWithWebIdentity: it reads no token. Behind the guard no such request
reaches moto. The guard hands every request whose action is AssumeRoleWithWebIdentity (in the query,
the form body or an X-Amz-Target header, signed or not) to `answer`, which checks it the way the STS
documentation describes and only then has moto's STS backend make the session:

- the parameters: exactly once each, nothing unknown, no ProviderId (OAuth 2.0 only);
- the token: a compact JWS, `alg` RS256 or ES256, a `kid`; `iss` names an IAM OIDC provider in the
  role's account, `aud` one of its client ids; `exp` in the future and `iat` not (a minute's skew);
  a `sub` of 6-255 characters;
- the signature, against the key of that `kid` in the issuer's JWKS, fetched from the issuer's
  discovery document. Only a loopback http issuer is ever fetched (the local API): the emulator
  makes no request to any other host, whatever a token names;
- the role's trust policy: an Allow statement for the provider (`Principal.Federated`) and
  `sts:AssumeRoleWithWebIdentity` whose conditions on `<provider>:aud`, `<provider>:sub` and the
  other keys below hold, and no Deny; with session tags in the token also `sts:TagSession`, with a
  source identity also `sts:SetSourceIdentity`. A condition operator or key this module does not
  evaluate fails the statement (deny by default);
- DurationSeconds within 900 and the role's MaxSessionDuration; the session name and the claims'
  tags and source identity in STS's character sets.

AssumeRoleWithSAML, which moto answers as unchecked, is refused outright.

The sessions made here are remembered (`SESSIONS`) with their tags and issue time, for the local
federation endpoint (`stsvend.local.federation`) to evaluate revocations against.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from stsvend.arns import ROLE_ARN, SESSION_NAME

ACTION = "AssumeRoleWithWebIdentity"
REFUSED_ACTIONS = ("assumerolewithsaml",)
_PARAMETERS = {
    "Action",
    "Version",
    "RoleArn",
    "RoleSessionName",
    "WebIdentityToken",
    "DurationSeconds",
    "Policy",
}
_POLICY_ARN_PARAMETER = re.compile(r"PolicyArns\.member\.([1-9][0-9]?)\.arn")
_SESSION_NAME = re.compile(SESSION_NAME)
# STS's tag charset, `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`: letters, separators and digits of any script.
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def _tag_text(text: str) -> bool:
    return all(c.isalnum() or c.isspace() or c in _TAG_PUNCTUATION for c in text)
CLOCK_SKEW_SECONDS = 60
JWKS_CACHE_SECONDS = 60
MAX_TOKEN_CHARS = 20000
ALGORITHMS = ("RS256", "ES256")
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"


class Rejected(Exception):
    """STS's answer to a request it refuses: its error code, HTTP status and message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Session:
    """A session this module made, as the federation stand-in needs it."""

    role_arn: str
    issued: datetime.datetime
    tags: Mapping[str, str]
    source_identity: str | None


SESSIONS: dict[str, Session] = {}  # access key id -> session
_sessions_lock = threading.Lock()


def remember(access_key_id: str, session: Session) -> None:
    with _sessions_lock:
        SESSIONS[access_key_id] = session


# --- which requests are ours -------------------------------------------------------------------


def _actions(query: str, body: bytes, target: str | None) -> list[str]:
    values = [v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k == "Action"]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    values += [v for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True) if k == "Action"]
    if target:
        values.append(target.rsplit(".", 1)[-1])
    return values


def is_federation(query: str, body: bytes, target: str | None) -> bool:
    """Whether moto would take this request for a federation call (web identity or SAML)."""
    return any(a.strip().lower() in (ACTION.lower(), *REFUSED_ACTIONS) for a in _actions(query, body, target))


def parameters(query: str, body: bytes, target: str | None) -> dict[str, str]:
    """The call's parameters: from the form body or the query, never both, each once."""
    if target:
        raise Rejected("InvalidAction", "AssumeRoleWithWebIdentity is a query-protocol call")
    actions = _actions(query, body, None)
    if [a.strip().lower() for a in actions] != [ACTION.lower()] or actions != [ACTION]:
        raise Rejected(
            "InvalidAction",
            "AssumeRoleWithSAML is not served by the local stack"
            if any(a.strip().lower() in REFUSED_ACTIONS for a in actions)
            else "the request names its action more than once or in another spelling",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("MalformedInput", "the body is not UTF-8") from None
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    if query:
        if pairs:
            raise Rejected("MalformedInput", "parameters in both the query and the body")
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise Rejected("MalformedInput", f"{key} is given more than once")
        if key not in _PARAMETERS and not _POLICY_ARN_PARAMETER.fullmatch(key):
            raise Rejected("InvalidParameter", f"{key[:40]!r} is not a parameter of {ACTION}")
        params[key] = value
    return params


# --- the token ---------------------------------------------------------------------------------


def _b64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise Rejected("InvalidIdentityToken", "the token is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Rejected("InvalidIdentityToken", f"the token's {what} is not a JSON object")
    return value


@dataclass(frozen=True)
class Token:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_token(token: str) -> Token:
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise Rejected("InvalidIdentityToken", "the token is not a compact JWS")
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = _json_object(_b64(header_b64), "header")
    claims = _json_object(_b64(claims_b64), "claims")
    if header.get("alg") not in ALGORITHMS:
        raise Rejected("InvalidIdentityToken", f"the token's alg must be one of {', '.join(ALGORITHMS)}")
    if not isinstance(header.get("kid"), str) or "crit" in header:
        raise Rejected("InvalidIdentityToken", "the token's header needs a kid and no crit")
    return Token(header, claims, f"{header_b64}.{claims_b64}".encode("ascii"), _b64(signature_b64))


def _verify_signature(token: Token, jwk: Mapping[str, Any]) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    def number(name: str) -> int:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise Rejected("InvalidIdentityToken", "the issuer's key is malformed")
        return int.from_bytes(_b64(value), "big")

    alg = token.header["alg"]
    try:
        if alg == "RS256" and jwk.get("kty") == "RSA":
            public = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
            public.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return
        if alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            if len(token.signature) != 64:
                raise InvalidSignature
            point = ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP256R1()).public_key()
            r, s = token.signature[:32], token.signature[32:]
            der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            point.verify(der, token.signing_input, ec.ECDSA(hashes.SHA256()))
            return
    except (InvalidSignature, ValueError):
        raise Rejected("InvalidIdentityToken", "the token's signature does not verify") from None
    raise Rejected("InvalidIdentityToken", "the token's alg does not match its key")


Fetch = Callable[[str], bytes]


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        return bytes(response.read(1 << 20))


def _loopback(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and not parts.query


@dataclass
class Keys:
    """JWKS per issuer, fetched through the discovery document and kept a while; an unknown kid
    fetches again (at most every few seconds), as a key rollover needs."""

    fetch: Fetch = _fetch
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, issuer: str, kid: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(issuer)
        if (
            cached is None
            or now - cached[0] > JWKS_CACHE_SECONDS
            or (kid not in cached[1] and now - cached[0] > 2)
        ):
            cached = (now, self._read(issuer))
            with self._lock:
                self._cache[issuer] = cached
        key = cached[1].get(kid)
        if key is None:
            raise Rejected("InvalidIdentityToken", "no key in the issuer's JWKS has the token's kid")
        return key

    def _read(self, issuer: str) -> dict[str, dict[str, Any]]:
        if not _loopback(issuer):
            raise Rejected(
                "IDPCommunicationError", "the local stack fetches keys only from a loopback http issuer"
            )
        try:
            discovery = json.loads(self.fetch(f"{issuer}/.well-known/openid-configuration"))
            jwks_uri = discovery["jwks_uri"] if discovery.get("issuer") == issuer else None
            if (
                not isinstance(jwks_uri, str)
                or not jwks_uri.startswith(issuer + "/")
                or not _loopback(jwks_uri)
            ):
                raise ValueError("the discovery document names another issuer or JWKS host")
            keys = json.loads(self.fetch(jwks_uri))["keys"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Rejected("IDPCommunicationError", f"the issuer's keys could not be read: {exc}") from None
        return {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}


# --- the trust policy ---------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringEqualsIgnoreCase": lambda actual, wanted: actual.lower() == wanted.lower(),
    "StringLike": lambda actual, wanted: fnmatch.fnmatchcase(actual, wanted.replace("[", "[[]")),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _condition_holds(operator: str, wanted: list[str], actual: list[str] | None) -> bool:
    qualifier, _, base = operator.rpartition(":")
    negated = base in _NEGATED
    compare = _OPERATORS.get(_NEGATED.get(base, base))
    if compare is None or qualifier not in ("", "ForAnyValue", "ForAllValues") or not wanted:
        return False  # an operator this module does not evaluate: the statement does not apply
    if actual is None:
        return negated or qualifier == "ForAllValues"
    if qualifier == "ForAllValues":
        matched = all(any(compare(a, w) for w in wanted) for a in actual)
    else:
        matched = any(compare(a, w) for a in actual for w in wanted)
    return not matched if negated else matched


def _statement_applies(
    statement: Mapping[str, Any], action: str, provider_arn: str, context: Mapping[str, list[str]]
) -> bool:
    principal = statement.get("Principal")
    federated = _strings(principal.get("Federated")) if isinstance(principal, dict) else []
    if provider_arn not in federated or "NotPrincipal" in statement or "NotAction" in statement:
        return False
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _strings(statement.get("Action"))):
        return False
    conditions = statement.get("Condition", {})
    if not isinstance(conditions, dict):
        return False
    for operator, keys in conditions.items():
        if not isinstance(keys, dict):
            return False
        for key, wanted in keys.items():
            actual = context.get(key.lower())
            if not _condition_holds(operator, _strings(wanted), actual):
                return False
    return True


def trust_allows(
    policy: Any, actions: Iterable[str], provider_arn: str, context: Mapping[str, list[str]]
) -> str | None:
    """None if the trust policy allows every action for this provider; else the one it does not."""
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return next(iter(actions))
    for action in actions:
        relevant = [s for s in statements if isinstance(s, dict)]
        if any(
            s.get("Effect") == "Deny" and _statement_applies(s, action, provider_arn, context)
            for s in relevant
        ):
            return action
        if not any(
            s.get("Effect") == "Allow" and _statement_applies(s, action, provider_arn, context)
            for s in relevant
        ):
            return action
    return None


# --- the call -----------------------------------------------------------------------------------


def _role(arn: str) -> Any:
    from moto.iam.models import iam_backends

    match = ROLE_ARN.fullmatch(arn)
    if match is None or match[1] != "aws":
        raise Rejected("ValidationError", "RoleArn is not an IAM role ARN")
    try:
        return iam_backends[match[2]]["aws"].get_role_by_arn(arn)
    except Exception:  # noqa: BLE001 - moto raises its own not-found types
        raise Rejected(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
        ) from None


def _provider(account: str, issuer: str) -> Any:
    from moto.iam.models import iam_backends

    parts = urllib.parse.urlsplit(issuer)
    wanted = parts.netloc + parts.path
    for provider in list(iam_backends[account]["aws"].open_id_providers.values()):
        if provider.url == wanted:
            return provider
    raise Rejected("InvalidIdentityToken", "No OpenIDConnect provider found in your account for " + issuer)


def _session_tags(claims: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    raw = claims.get(TAGS_CLAIM)
    if raw is None:
        return {}, []
    if not isinstance(raw, dict) or not set(raw) <= {"principal_tags", "transitive_tag_keys"}:
        raise Rejected(
            "InvalidIdentityToken", f"{TAGS_CLAIM} must hold principal_tags and transitive_tag_keys"
        )
    tags: dict[str, str] = {}
    for key, values in (raw.get("principal_tags") or {}).items():
        if not (isinstance(values, list) and len(values) == 1 and isinstance(values[0], str)):
            raise Rejected("InvalidIdentityToken", f"session tag {key!r} must have exactly one value")
        if not (
            1 <= len(key) <= 128
            and _tag_text(key)
            and len(values[0]) <= 256
            and _tag_text(values[0])
        ) or key.lower().startswith("aws:"):
            raise Rejected("InvalidIdentityToken", f"session tag {key[:40]!r} is not a valid tag")
        tags[key] = values[0]
    if len(tags) > 50 or len({k.lower() for k in tags}) != len(tags):
        raise Rejected("InvalidIdentityToken", "at most 50 session tags, each key once")
    transitive = raw.get("transitive_tag_keys") or []
    if not isinstance(transitive, list) or not set(transitive) <= set(tags):
        raise Rejected("InvalidIdentityToken", "transitive_tag_keys must name session tags of the token")
    return tags, transitive


def _time_claims(claims: Mapping[str, Any], now: float) -> None:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise Rejected("InvalidIdentityToken", "the token has no exp")
    if exp + CLOCK_SKEW_SECONDS <= now:
        raise Rejected("ExpiredTokenException", "Token expired")
    if iat is not None and (not isinstance(iat, (int, float)) or iat - CLOCK_SKEW_SECONDS > now):
        raise Rejected("InvalidIdentityToken", "the token is issued in the future")


def check(params: Mapping[str, str], keys: Keys, now: float) -> dict[str, Any]:
    """Everything STS checks before it makes the session; what the session needs."""
    for required in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
        if not params.get(required):
            raise Rejected("MissingParameter", f"{required} is required")
    if not _SESSION_NAME.fullmatch(params["RoleSessionName"]):
        raise Rejected("ValidationError", "RoleSessionName must be 2-64 characters of [\\w+=,.@-]")
    token = parse_token(params["WebIdentityToken"])
    role = _role(params["RoleArn"])
    account = params["RoleArn"].split(":")[4]
    claims = token.claims
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise Rejected("InvalidIdentityToken", "the token has no iss")
    provider = _provider(account, issuer)
    audiences = _strings(claims.get("aud"))
    if not audiences or not set(audiences) & set(provider.client_id_list):
        raise Rejected("InvalidIdentityToken", "Incorrect token audience")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 6 <= len(subject) <= 255:
        raise Rejected("InvalidIdentityToken", "the token's sub must be 6-255 characters")
    _verify_signature(token, keys.key(issuer, token.header["kid"]))
    _time_claims(claims, now)
    tags, transitive = _session_tags(claims)
    source_identity = claims.get(SOURCE_IDENTITY_CLAIM)
    if source_identity is not None and not (
        isinstance(source_identity, str)
        and _SESSION_NAME.fullmatch(source_identity)
        and not source_identity.lower().startswith("aws:")
    ):
        raise Rejected("InvalidIdentityToken", "the token's source identity is not valid")
    raw_duration = params.get("DurationSeconds", "3600")
    longest = int(role.max_session_duration or 3600)
    if not raw_duration.isdigit() or not 900 <= int(raw_duration) <= longest:
        raise Rejected(
            "ValidationError",
            f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({longest})",
        )
    if "Policy" in params:
        try:
            json.loads(params["Policy"])
        except ValueError:
            raise Rejected("MalformedPolicyDocument", "the session policy is not JSON") from None
    prefix = provider.url
    context: dict[str, list[str]] = {
        f"{prefix}:aud".lower(): audiences,
        f"{prefix}:sub".lower(): [subject],
        "aws:tagkeys": list(tags),
        "sts:roleSessionName".lower(): [params["RoleSessionName"]],
        **{f"aws:requesttag/{k}".lower(): [v] for k, v in tags.items()},
    }
    if source_identity is not None:
        context["sts:sourceidentity"] = [source_identity]
    actions = ["sts:AssumeRoleWithWebIdentity"]
    actions += ["sts:TagSession"] if tags else []
    actions += ["sts:SetSourceIdentity"] if source_identity is not None else []
    policy = role.assume_role_policy_document
    try:
        document = json.loads(urllib.parse.unquote(policy) if isinstance(policy, str) else json.dumps(policy))
    except ValueError:
        document = None
    refused = trust_allows(document, actions, provider.arn, context)
    if refused is not None:
        raise Rejected("AccessDenied", f"Not authorized to perform {refused}", 403)
    return {
        "role_arn": params["RoleArn"],
        "session_name": params["RoleSessionName"],
        "duration": int(raw_duration),
        "policy": params.get("Policy"),
        "subject": subject,
        "audience": audiences[0],
        "provider": prefix,
        "tags": tags,
        "source_identity": source_identity,
    }


def _xml(fields: Mapping[str, Any]) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items() if v is not None)


def make_session(decided: Mapping[str, Any]) -> bytes:
    """moto's STS backend makes the session; the answer in STS's own shape."""
    from moto.sts.models import sts_backends

    account = decided["role_arn"].split(":")[4]
    session = sts_backends[account]["aws"].assume_role_with_web_identity(
        region_name="us-east-1",
        role_session_name=decided["session_name"],
        role_arn=decided["role_arn"],
        policy=decided["policy"],
        duration=decided["duration"],
        external_id=None,
    )
    issued = session.expiration.replace(tzinfo=datetime.UTC) - datetime.timedelta(seconds=decided["duration"])
    remember(
        session.access_key_id,
        Session(decided["role_arn"], issued, dict(decided["tags"]), decided["source_identity"]),
    )
    credentials = _xml(
        {
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret_access_key,
            "SessionToken": session.session_token,
            "Expiration": session.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    result = (
        f"<Credentials>{credentials}</Credentials>"
        + _xml({"SubjectFromWebIdentityToken": decided["subject"]})
        + f"<AssumedRoleUser>{_xml({'Arn': session.arn, 'AssumedRoleId': session.user_id})}</AssumedRoleUser>"
        + _xml(
            {
                "Provider": decided["provider"],
                "Audience": decided["audience"],
                "SourceIdentity": decided["source_identity"],
                "PackedPolicySize": 6,
            }
        )
    )
    return (
        f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}"><AssumeRoleWithWebIdentityResult>{result}'
        f"</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
        "</ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
    ).encode()


def error_body(rejected: Rejected) -> bytes:
    kind = "Receiver" if rejected.status >= 500 else "Sender"
    return (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type><Code>{escape(rejected.code)}</Code>'
        f"<Message>{escape(rejected.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    ).encode()


_KEYS = Keys()


def answer(
    query: str, body: bytes, target: str | None, keys: Keys | None = None, now: float | None = None
) -> tuple[int, bytes, str | None]:
    """The HTTP status and body for a federation request, and why it was refused (None: served)."""
    try:
        params = parameters(query, body, target)
        decided = check(params, keys or _KEYS, time.time() if now is None else now)
        return 200, make_session(decided), None
    except Rejected as rejected:
        return rejected.status, error_body(rejected), f"{rejected.code}: {rejected.message}"
