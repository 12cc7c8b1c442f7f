"""The credential request, validated against STS's limits, and the exact AssumeRole it becomes
(DESIGN.md section 4). Pure: the call itself is `chalicelib.sts`."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

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
SESSION_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{2,64}$")
_NOT_SESSION_CHARS = re.compile(r"[^A-Za-z0-9+=,.@_-]")
# What a service tag value keeps as it is: the ASCII part of STS's tag charset except `=`, which
# escapes everything else (see service_tag_value).
_TAG_VALUE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/+-@")
_TAG_VALUE_PLAIN = re.compile(r"[A-Za-z0-9 _.:/+@-]{0,256}")
# Exactly the ASCII characters _tag_text_ok accepts (letters, digits, space and _.:/=+-@), alone and
# within a tag key's and value's lengths.
_ASCII_TAG_TEXT = re.compile(r"[A-Za-z0-9 _.:/=+@-]*")
_ASCII_TAG_KEY = re.compile(rf"[A-Za-z0-9 _.:/=+@-]{{1,{MAX_TAG_KEY}}}")
_ASCII_TAG_VALUE = re.compile(rf"[A-Za-z0-9 _.:/=+@-]{{0,{MAX_TAG_VALUE}}}")
_REQUEST_FIELDS = {"role_arn", "duration_seconds", "tags", "session_name"}
TAG_CALLER = "stsvend:caller"
TAG_ACCOUNT = "stsvend:caller-account"
TAG_REQUEST_ID = "stsvend:request-id"
TRANSITIVE_TAG_KEYS = (TAG_CALLER, TAG_ACCOUNT)


@dataclass(frozen=True)
class CredentialRequest:
    role_arn: str
    duration_seconds: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    session_name: str | None = None


def _tag_text_ok(text: str) -> bool:
    """STS tag characters: Unicode letters, separators and numbers, and _ . : / = + - @."""
    if _ASCII_TAG_TEXT.fullmatch(text):
        return True  # the usual case, without a Unicode lookup per character
    return all(ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def validate_tag(key: Any, value: Any) -> None:
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidRequest("tags must map strings to strings")
    # The ASCII patterns check length and characters in one match, the usual case.
    if not _ASCII_TAG_KEY.fullmatch(key) and (not 1 <= len(key) <= MAX_TAG_KEY or not _tag_text_ok(key)):
        raise InvalidRequest(
            f"tag key {key[:40]!r} must be 1-{MAX_TAG_KEY} letters, digits, spaces or _.:/=+-@"
        )
    if not _ASCII_TAG_VALUE.fullmatch(value) and (len(value) > MAX_TAG_VALUE or not _tag_text_ok(value)):
        raise InvalidRequest(
            f"tag {key!r} value must be at most {MAX_TAG_VALUE} letters, digits, spaces or _.:/=+-@"
        )
    if key.casefold().startswith("aws:"):
        raise InvalidRequest("tag keys starting with aws: are reserved by AWS")


# Callers ask for the same few roles again and again; the role ARN pattern (which backtracks over
# the optional path) is then checked once per role, not on every request.
@functools.lru_cache(maxsize=128)
def _role_arn_partition(role_arn: str) -> str | None:
    match = ROLE_ARN.fullmatch(role_arn)
    return match.group(1) if match else None


def parse_request(body: bytes | str | None, partition: str) -> CredentialRequest:
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
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
    role_partition = _role_arn_partition(role_arn)
    if role_partition is None:
        raise InvalidRequest("role_arn is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    if role_partition != partition:
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
    for key, value in tags.items():
        validate_tag(key, value)
    if len({k.lower() for k in tags}) != len(tags):
        raise InvalidRequest("tag keys are case-insensitive; a key is repeated")
    session_name = data.get("session_name")
    if session_name is not None and (
        not isinstance(session_name, str) or not SESSION_NAME.fullmatch(session_name)
    ):
        raise InvalidRequest("session_name must be 2-64 characters of letters, digits and +=,.@_-")
    return CredentialRequest(role_arn, duration, tags, session_name)


def _sanitize(text: str) -> str:
    return _NOT_SESSION_CHARS.sub("-", text)


def role_session_name(caller: Caller, request: CredentialRequest, request_id: str) -> str:
    """`<caller name>-<suffix>`: the request's session name, the caller's own, or a request id."""
    suffix = request.session_name or caller.session_name or request_id.replace("-", "")[:12]
    suffix = _sanitize(suffix)[:32] or "x"
    name = _sanitize(caller.name)[: 63 - len(suffix)]
    return f"{name}-{suffix}"


def source_identity(caller: Caller) -> str:
    value = _sanitize(caller.name)[:64]
    return value if len(value) >= 2 else value + "_"


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


def session_tags(
    caller: Caller, request: CredentialRequest, grant: Grant, request_id: str
) -> list[dict[str, str]]:
    tags = [
        {"Key": TAG_CALLER, "Value": service_tag_value(caller.principal_arn)},
        {"Key": TAG_ACCOUNT, "Value": service_tag_value(caller.account_id)},
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


@dataclass(frozen=True)
class Plan:
    """Everything decided before STS is called: the exact AssumeRole parameters."""

    role: RoleGrant
    params: dict[str, Any]


def plan_assume_role(caller: Caller, request: CredentialRequest, grant: Grant, request_id: str) -> Plan:
    role = grant.role(request.role_arn)
    if role is None:
        raise RoleNotGranted("the caller's grant does not include this role")
    duration = resolve_duration(request, role)
    tags = session_tags(caller, request, grant, request_id)
    params: dict[str, Any] = {
        "RoleArn": role.role_arn,
        "RoleSessionName": role_session_name(caller, request, request_id),
        "DurationSeconds": duration,
        "SourceIdentity": source_identity(caller),
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
