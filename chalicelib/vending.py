"""The credential request, validated against STS's limits, and the exact AssumeRole it becomes
(docs/design.md section 4). Pure: the call itself is `chalicelib.sts`."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from chalicelib import arns
from chalicelib.arns import ROLE_ARN
from chalicelib.errors import (
    DurationNotAllowed,
    InvalidRequest,
    PayloadTooLarge,
    RoleNotGranted,
    TagNotAllowed,
)
from chalicelib.grants import MAX_REQUEST_TAGS, MIN_DURATION_SECONDS, Grant, RoleGrant
from chalicelib.identity import Caller
from chalicelib.jsontext import JsonTextError, loads_strict

MAX_BODY_BYTES = 16 * 1024
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
# RoleSessionName and SourceIdentity: STS's [\w+=,.@-], where \w is ASCII (IAM name characters).
SESSION_NAME = re.compile(rf"^{arns.SESSION_NAME}$")
_NOT_SESSION_CHARS = re.compile(rf"[^{arns.NAME_CHAR_SET}]")
# What a service tag value keeps as it is: the ASCII part of STS's tag charset except `=`, which
# escapes everything else (see service_tag_value).
_TAG_VALUE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/+-@")
_TAG_VALUE_PLAIN = re.compile(r"[A-Za-z0-9 _.:/+@-]{0,256}")
_REQUEST_FIELDS = {"role_arn", "duration_seconds", "tags", "session_name"}
TAG_CALLER = "stsvend:caller"
TAG_ACCOUNT = "stsvend:caller-account"
TAG_REQUEST_ID = "stsvend:request-id"
TRANSITIVE_TAG_KEYS = (TAG_CALLER, TAG_ACCOUNT)


class CredentialRequest(NamedTuple):
    role_arn: str
    duration_seconds: int | None = None
    tags: Mapping[str, str] = MappingProxyType({})
    session_name: str | None = None


# The ASCII characters _tag_text_ok accepts: letters, digits, space and _.:/=+-@.
_ASCII_TAG_TEXT = re.compile(r"[A-Za-z0-9 _.:/=+@-]*")


def _tag_text_ok(text: str) -> bool:
    """STS tag characters: Unicode letters, separators and numbers, and _ . : / = + - @."""
    if _ASCII_TAG_TEXT.fullmatch(text):
        # The usual text, told in one match instead of a Unicode lookup per character: the OIDC
        # route checks every claim it tags on each request (bench/README.md, warm OIDC vend).
        return True
    return all(ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def validate_tag(key: Any, value: Any) -> str:
    """Check one request tag; its key lower-cased (tag keys are case-insensitive)."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidRequest("tags must map strings to strings")
    if not 1 <= len(key) <= MAX_TAG_KEY or not _tag_text_ok(key):
        raise InvalidRequest(
            f"tag key {key[:40]!r} must be 1-{MAX_TAG_KEY} letters, digits, spaces or _.:/=+-@"
        )
    if len(value) > MAX_TAG_VALUE or not _tag_text_ok(value):
        raise InvalidRequest(
            f"tag {key!r} value must be at most {MAX_TAG_VALUE} letters, digits, spaces or _.:/=+-@"
        )
    if key.casefold().startswith("aws:"):
        raise InvalidRequest("tag keys starting with aws: are reserved by AWS")
    return key.lower()


def _parse(raw: bytes, partition: str) -> CredentialRequest:
    try:
        data = loads_strict(raw)
    except JsonTextError as exc:
        raise InvalidRequest(f"the request body {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if not data.keys() <= _REQUEST_FIELDS:
        unknown = data.keys() - _REQUEST_FIELDS
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    role_arn = data.get("role_arn")
    if not isinstance(role_arn, str):
        raise InvalidRequest("role_arn is required and must be a string")
    role_match = ROLE_ARN.fullmatch(role_arn)
    if role_match is None:
        raise InvalidRequest("role_arn is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    if role_match.group(1) != partition:
        raise InvalidRequest(f"role_arn must be in partition {partition}")
    duration = data.get("duration_seconds")
    if isinstance(duration, float) and duration.is_integer():
        duration = int(duration)  # JSON has one number type: 900.0 is 900 (as in JSON Schema)
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
        raise InvalidRequest("duration_seconds must be a whole number of seconds")
    tags = data.get("tags", {})
    if not isinstance(tags, dict):
        raise InvalidRequest("tags must be an object of key to value")
    if len(tags) > MAX_REQUEST_TAGS:
        raise InvalidRequest(f"at most {MAX_REQUEST_TAGS} tags (STS allows 50; stsvend sets 3)")
    if len({validate_tag(key, value) for key, value in tags.items()}) != len(tags):
        raise InvalidRequest("tag keys are case-insensitive; a key is repeated")
    session_name = data.get("session_name")
    if session_name is not None and (
        not isinstance(session_name, str) or not SESSION_NAME.fullmatch(session_name)
    ):
        raise InvalidRequest("session_name must be 2-64 characters of letters, digits and +=,.@_-")
    # Read-only: a remembered request is shared by every request that sent the same body.
    return CredentialRequest(role_arn, duration, MappingProxyType(tags), session_name)


# On the warm path (bench/README.md, "Warm vend overhead": stsvend's own share, the goal row). A
# credential_process profile fixes its role, duration and tags, so an agent sends the same body on
# every vend: the validated request is remembered per distinct body. Pure and bounded: the request
# is a function of the body's bytes and the service's partition alone, and immutable; a body that
# fails raises, which is never remembered (every bad body is checked again in full); bodies over
# MEMO_BODY_BYTES are not kept. Held at most: 128 bodies and their parsed forms, about 3 MiB (a
# parsed string can take 4 bytes a character, so a 4 KiB body's request can take ~18 KiB).
MEMO_BODY_BYTES = 4096
_parse_remembered = functools.lru_cache(maxsize=128)(_parse)


def parse_request(body: bytes | str | None, partition: str) -> CredentialRequest:
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    if len(raw) <= MEMO_BODY_BYTES:
        return _parse_remembered(raw, partition)
    return _parse(raw, partition)


def _sanitize(text: str) -> str:
    return _NOT_SESSION_CHARS.sub("-", text)


def _session_suffix(text: str) -> str:
    return _sanitize(text)[:32] or "x"


class _CallerParts(NamedTuple):
    """What a vend derives from the caller alone: the same for every request it makes."""

    name: str  # sanitized, uncut
    default_suffix: str | None  # its own session name as a session name suffix
    source_identity: str
    caller_tag: str
    account_tag: str


# On the warm path (bench/README.md, "Warm vend overhead"): a warm function serves the same callers
# again and again, and these are pure functions of the caller's strings, so they are derived once
# per distinct caller. Nothing here can fail, so nothing but a result is ever cached.
@functools.lru_cache(maxsize=1024)
def _caller_parts(name: str, session_name: str | None, principal_arn: str, account_id: str) -> _CallerParts:
    sanitized = _sanitize(name)
    identity = sanitized[:64]
    return _CallerParts(
        sanitized,
        _session_suffix(session_name) if session_name else None,
        identity if len(identity) >= 2 else identity + "_",
        service_tag_value(principal_arn),
        service_tag_value(account_id),
    )


def _parts(caller: Caller) -> _CallerParts:
    return _caller_parts(caller.name, caller.session_name, caller.principal_arn, caller.account_id)


def role_session_name(caller: Caller, request: CredentialRequest, request_id: str) -> str:
    return _role_session_name(_parts(caller), request, request_id)


def _role_session_name(parts: _CallerParts, request: CredentialRequest, request_id: str) -> str:
    """`<caller name>-<suffix>`: the request's session name, the caller's own, or a request id."""
    if request.session_name:
        suffix = _session_suffix(request.session_name)
    else:
        suffix = parts.default_suffix or _session_suffix(request_id.replace("-", "")[:12])
    return f"{parts.name[: 63 - len(suffix)]}-{suffix}"


def source_identity(caller: Caller) -> str:
    return _parts(caller).source_identity


def service_tag_value(text: str) -> str:
    """`text` within STS's tag value charset, reversibly: IAM names may hold `,`, which a tag value
    may not. `=` is the escape, as in quoted-printable: `=` becomes `=3D`, `,` becomes `=2C`, and
    any other character outside [A-Za-z0-9 _.:/+-@] becomes `=XX` per UTF-8 byte. So `role/a,b`
    is tagged `role/a=2Cb`, `role/a=b` is `role/a=3Db`, and no two texts share a value. A caller
    principal is at most 38 + 3 x 64 characters escaped, within the 256 allowed; a longer text is
    cut before an escape, never inside one."""
    if _TAG_VALUE_PLAIN.fullmatch(text):
        return text  # the usual case: nothing to escape
    value = ""
    for char in text:
        piece = char if char in _TAG_VALUE_SAFE else "".join(f"={b:02X}" for b in char.encode())
        if len(value) + len(piece) > MAX_TAG_VALUE:
            break
        value += piece
    return value


def _session_tags(
    parts: _CallerParts, request: CredentialRequest, grant: Grant, request_id: str
) -> list[dict[str, str]]:
    tags = [
        {"Key": TAG_CALLER, "Value": parts.caller_tag},
        {"Key": TAG_ACCOUNT, "Value": parts.account_tag},
        {"Key": TAG_REQUEST_ID, "Value": service_tag_value(request_id)},
    ]
    for key, value in request.tags.items():
        if key.casefold().startswith("stsvend:"):  # casefold: "ſtsvend:" too
            raise TagNotAllowed(f"tag {key!r} collides with the stsvend: tags the service sets")
        allowed = grant.allowed_tag_key(key)
        if allowed is None:
            raise TagNotAllowed(f"the grant does not allow tag {key!r}")
        tags.append({"Key": allowed, "Value": value})
    return tags


def resolve_duration(request: CredentialRequest, role: RoleGrant) -> int:
    duration = request.duration_seconds
    if duration is None:
        return role.max_duration_seconds
    if not MIN_DURATION_SECONDS <= duration <= role.max_duration_seconds:
        raise DurationNotAllowed(
            f"duration_seconds must be from {MIN_DURATION_SECONDS} to"
            f" {role.max_duration_seconds} for this role"
        )
    return duration


class Plan(NamedTuple):
    """Everything decided before STS is called: the exact AssumeRole parameters."""

    role: RoleGrant
    params: dict[str, Any]


def plan_assume_role(caller: Caller, request: CredentialRequest, grant: Grant, request_id: str) -> Plan:
    role = grant.role(request.role_arn)
    if role is None:
        raise RoleNotGranted("the caller's grant does not include this role")
    duration = resolve_duration(request, role)
    parts = _caller_parts(caller.name, caller.session_name, caller.principal_arn, caller.account_id)
    tags = _session_tags(parts, request, grant, request_id)
    params: dict[str, Any] = {
        "RoleArn": role.role_arn,
        "RoleSessionName": _role_session_name(parts, request, request_id),
        "DurationSeconds": duration,
        "SourceIdentity": parts.source_identity,
        "Tags": tags,
        "TransitiveTagKeys": list(TRANSITIVE_TAG_KEYS),
    }
    if role.session_policy_document:
        params["Policy"] = role.session_policy_document
    if role.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in role.policy_arns]
    if role.external_id:
        params["ExternalId"] = role.external_id
    return Plan(role, params)
