"""The credential request: validated against STS's limits, then one AssumeRole (DESIGN.md section 4)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.arns import ROLE_ARN
from chalicelib.errors import (
    AssumeRoleDenied,
    DurationNotAllowed,
    InvalidRequest,
    PayloadTooLarge,
    PolicyTooLarge,
    RoleNotGranted,
    ServiceUnavailable,
    TagNotAllowed,
)
from chalicelib.grants import MAX_REQUEST_TAGS, MIN_DURATION_SECONDS, Grant, RoleGrant
from chalicelib.identity import Caller
from chalicelib.jsontext import JsonTextError, loads_strict

MAX_BODY_BYTES = 16 * 1024
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
SESSION_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{2,64}$")
_NOT_SESSION_CHARS = re.compile(r"[^A-Za-z0-9+=,.@_-]")
# Exactly the ASCII characters _tag_text_ok accepts (letters, digits, space and _.:/=+-@).
_ASCII_TAG_TEXT = re.compile(r"[A-Za-z0-9 _.:/=+@-]*")
_REQUEST_FIELDS = {"role_arn", "duration_seconds", "tags", "session_name"}
TAG_CALLER = "stsvend:caller"
TAG_ACCOUNT = "stsvend:caller-account"
TAG_REQUEST_ID = "stsvend:request-id"
TRANSITIVE_TAG_KEYS = (TAG_CALLER, TAG_ACCOUNT)
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
}


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
    unknown = set(data) - _REQUEST_FIELDS
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    role_arn = data.get("role_arn")
    if not isinstance(role_arn, str):
        raise InvalidRequest("role_arn is required and must be a string")
    match = ROLE_ARN.fullmatch(role_arn)
    if not match:
        raise InvalidRequest("role_arn is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    if match.group(1) != partition:
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
    return CredentialRequest(role_arn, duration, dict(tags), session_name)


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


def session_tags(
    caller: Caller, request: CredentialRequest, grant: Grant, request_id: str
) -> list[dict[str, str]]:
    tags = [
        {"Key": TAG_CALLER, "Value": caller.principal_arn[:MAX_TAG_VALUE]},
        {"Key": TAG_ACCOUNT, "Value": caller.account_id},
        {"Key": TAG_REQUEST_ID, "Value": request_id[:MAX_TAG_VALUE]},
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


def _denied_message(role: RoleGrant) -> str:
    needs = "sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity"
    external = " with the grant's external id (sts:ExternalId)" if role.external_id else ""
    return (
        f"STS refused to assume {role.role_arn}: check that its trust policy allows the stsvend"
        f" service role {needs}{external}, and that the service role may call them"
    )


def assume_role(sts: Any, plan: Plan) -> dict[str, Any]:
    """Call STS; translate its failures into the service's errors (the cause is kept)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = sts.assume_role(**plan.params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "PackedPolicyTooLarge":
            raise PolicyTooLarge(
                "STS says the session policy and tags are too large once packed; shorten the"
                " request's tags or the grant's session policy"
            ) from exc
        if code in _THROTTLED or status >= 500:
            raise ServiceUnavailable("STS is throttling or unavailable; try again") from exc
        if code == "AccessDenied":
            raise AssumeRoleDenied(_denied_message(plan.role)) from exc
        if code == "RegionDisabledException":
            raise AssumeRoleDenied(
                "STS is not activated in the service's region for the target role's account"
            ) from exc
        raise AssumeRoleDenied(f"STS rejected the AssumeRole request ({code or status})") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("STS could not be reached; try again") from exc
    creds = answer["Credentials"]
    expiration = creds["Expiration"]
    if isinstance(expiration, datetime):
        expiration = expiration.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Version": 1,
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": expiration,
        "AssumedRoleArn": answer["AssumedRoleUser"]["Arn"],
        "RoleSessionName": plan.params["RoleSessionName"],
        "SourceIdentity": plan.params["SourceIdentity"],
    }
