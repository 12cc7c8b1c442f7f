"""`POST /oidc/credentials`: a CI job's OIDC token, verified, decided by a grant, vended as AssumeRole.

Imported on the first OIDC request only (it brings PyJWT and `cryptography`).

The decision, deny by default: the verified token's issuer and claims select the grants of that
issuer whose every condition holds; the most specific one (the most claims pinned) decides, and two
equally specific ones are ambiguous and deny, as IAM grants do. A stored entry of this issuer that
does not parse denies every caller of the issuer until it is fixed (it might have decided). The
deciding grant must be enabled and unexpired, and a pull-request context (untrusted code) is
admitted only by a grant that says `"pull_requests": true`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.audit import Auditor
from chalicelib.config import Settings
from chalicelib.errors import CallerNotAllowed, InvalidRequest, RoleNotGranted, StsvendError, TagNotAllowed
from chalicelib.grant_store import GrantStore, from_attribute
from chalicelib.oidc import signature  # noqa: F401 - PyJWT and cryptography, loaded with the route
from chalicelib.oidc.config import (
    PARTITION,
    BrokenEntry,
    Issuer,
    OidcConfig,
    OidcGrant,
    claim_text,
    config_from_items,
)
from chalicelib.oidc.verify import Verifier, bearer_token
from chalicelib.sts import assume_role
from chalicelib.vending import (
    MAX_TAG_VALUE,
    TAG_CALLER,
    TAG_REQUEST_ID,
    Plan,
    _tag_text_ok,
    parse_request,
    resolve_duration,
    service_tag_value,
)

MAX_SESSION_TAGS = 50
_RUN_PART = re.compile(r"[A-Za-z0-9._-]{1,40}")
_NO_GRANT = "no grant allows this caller"


class ConfigStore:
    """The `oidc` partition of the grants table as one configuration, kept for the grants' TTL."""

    def __init__(
        self, grants: GrantStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grants = grants
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: tuple[float, OidcConfig] | None = None
        self._lock = threading.Lock()

    def get(self) -> OidcConfig:
        now = self._clock()
        cached = self._cached
        if cached is not None and cached[0] > now:
            return cached[1]
        items = self._grants.items(PARTITION)
        config = config_from_items({k: from_attribute(v) for k, v in item.items()} for item in items)
        if self._ttl > 0:
            with self._lock:
                self._cached = (now + self._ttl, config)
        return config


def decide(config: OidcConfig, issuer: Issuer, claims: Mapping[str, Any], now: datetime) -> OidcGrant:
    """The one grant that decides for this verified token, or the reason none does."""
    broken = [g for g in config.grants if isinstance(g, BrokenEntry) and g.issuer in (issuer.name, None)]
    if broken:
        raise CallerNotAllowed(_NO_GRANT, detail=f"a stored oidc grant does not parse: {broken[0].problem}")
    matching = [
        g for g in config.grants if isinstance(g, OidcGrant) and g.issuer == issuer.name and g.matches(claims)
    ]
    if not matching:
        raise CallerNotAllowed(_NO_GRANT)
    best = max(len(g.claims) for g in matching)
    candidates = [g for g in matching if len(g.claims) == best]
    if len(candidates) > 1:
        names = ", ".join(sorted(g.name for g in candidates))
        raise CallerNotAllowed(_NO_GRANT, detail=f"ambiguous: equally specific oidc grants match: {names}")
    (grant,) = candidates
    if not grant.enabled:
        raise CallerNotAllowed("the caller's grant is disabled")
    if grant.not_after is not None and now >= grant.not_after:
        raise CallerNotAllowed("the caller's grant has expired")
    if issuer.kind.pull_request(claims) and not grant.pull_requests:
        raise CallerNotAllowed(
            "the token is from a pull-request context, which the caller's grant does not admit"
        )
    return grant


def run_identity(issuer: Issuer, claims: Mapping[str, Any]) -> str:
    """`<prefix>-<run claims>`: the CI run, as SourceIdentity and RoleSessionName carry it."""
    parts = [claim_text(claims.get(c)) for c in issuer.kind.run_claims]
    if not all(p is not None and _RUN_PART.fullmatch(p) for p in parts):
        raise CallerNotAllowed(
            f"the token lacks the run identity claims of {issuer.kind.name}"
            f" ({', '.join(issuer.kind.run_claims)})"
        )
    return f"{issuer.kind.prefix}-{'-'.join(p for p in parts if p)}"[:64]


def claim_tags(
    issuer: Issuer, claims: Mapping[str, Any]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The issuer's claims as session tags, and those dropped: a value STS would refuse is never
    cut or rewritten into another value."""
    tags: list[dict[str, str]] = []
    dropped: list[dict[str, str]] = []
    for key, claim in issuer.kind.tags:
        if claim not in claims:
            continue
        value = claim_text(claims[claim])
        if value is None:
            dropped.append({"tag": key, "claim": claim, "reason": "not a string"})
        elif len(value) > MAX_TAG_VALUE:
            dropped.append({"tag": key, "claim": claim, "reason": f"over {MAX_TAG_VALUE} characters"})
        elif not _tag_text_ok(value):
            dropped.append({"tag": key, "claim": claim, "reason": "characters outside STS's tag charset"})
        else:
            tags.append({"Key": key, "Value": value})
    return tags, dropped


def plan(
    issuer: Issuer,
    claims: Mapping[str, Any],
    grant: OidcGrant,
    body: bytes | None,
    partition: str,
    request_id: str,
) -> tuple[Plan, list[dict[str, str]]]:
    request = parse_request(body, partition)
    role = grant.role(request.role_arn)
    if role is None:
        raise RoleNotGranted("the caller's grant does not include this role")
    duration = resolve_duration(request, role)
    run = run_identity(issuer, claims)
    session = run
    if request.session_name:
        suffix = request.session_name[:32]
        session = f"{run[: 63 - len(suffix)]}-{suffix}"
    tags, dropped = claim_tags(issuer, claims)
    tags = [
        {"Key": TAG_CALLER, "Value": f"oidc:{issuer.name}:{grant.name}"},
        {"Key": TAG_REQUEST_ID, "Value": service_tag_value(request_id)},
        *tags,
    ]
    for key, value in request.tags.items():
        if key.casefold().startswith(("stsvend:", "ci:")):
            raise TagNotAllowed(f"tag {key!r} collides with the tags the service sets")
        allowed = grant.allowed_tag_key(key)
        if allowed is None:
            raise TagNotAllowed(f"the grant does not allow tag {key!r}")
        tags.append({"Key": allowed, "Value": value})
    if len(tags) > MAX_SESSION_TAGS:
        raise InvalidRequest(f"too many tags: stsvend sets {len(tags) - len(request.tags)} of STS's 50")
    params: dict[str, Any] = {
        "RoleArn": role.role_arn,
        "RoleSessionName": session,
        "DurationSeconds": duration,
        "SourceIdentity": run,
        "Tags": tags,
        "TransitiveTagKeys": [TAG_CALLER],
    }
    # The role's own limits, as an IAM caller's vend sends them (chalicelib.vending).
    optional = {
        "Policy": role.session_policy_document,
        "PolicyArns": [{"arn": arn} for arn in role.policy_arns],
        "ExternalId": role.external_id,
    }
    params.update((name, value) for name, value in optional.items() if value)
    return Plan(role, params), dropped


def _caller(
    issuer: Issuer | None, claims: Mapping[str, Any] | None, grant: OidcGrant | None
) -> dict[str, Any]:
    if issuer is None or claims is None:
        return {"caller_arn": None, "caller_kind": "oidc"}
    fields: dict[str, Any] = {
        "caller_kind": "oidc",
        "caller_arn": f"oidc:{issuer.name}:{claim_text(claims.get('sub'))}",
        "oidc_issuer": issuer.name,
        # The verified claims (the token itself is never logged).
        "oidc_claims": dict(claims),
    }
    if grant is not None:
        fields["caller_principal"] = f"oidc:{issuer.name}:{grant.name}"
    return fields


class OidcVending:
    def __init__(
        self,
        settings: Settings,
        clients: Any,
        grants: GrantStore,
        auditor: Auditor,
        now: Callable[[], datetime],
        verifier: Verifier | None = None,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._config = ConfigStore(grants, settings.grant_cache_seconds)
        self._auditor = auditor
        self._now = now
        self.verifier = verifier or Verifier()

    def vend(
        self, request_id: str, headers: Mapping[str, str], body: bytes | None, source_ip: str | None
    ) -> dict[str, Any]:
        issuer: Issuer | None = None
        claims: dict[str, Any] | None = None
        grant: OidcGrant | None = None
        try:
            bearer_token(headers.get("authorization"))  # its size and shape before any table read
            config = self._config.get()
            issuer, claims = self.verifier.verify(headers.get("authorization"), config)
            grant = decide(config, issuer, claims, self._now())
            planned, dropped = plan(issuer, claims, grant, body, self._settings.partition, request_id)
            answer = assume_role(self._clients.sts(), planned)
        except Exception as exc:
            code, message, detail = "InternalError", "unexpected", None
            if isinstance(exc, StsvendError):
                code, message, detail = exc.code, exc.message, exc.detail
            fields = {"request_id": request_id, **_caller(issuer, claims, grant), "source_ip": source_ip}
            if detail is not None:
                fields["detail"] = detail
            self._auditor.line("credentials.denied", {**fields, "code": code, "reason": message}, code)
            raise
        params = planned.params
        self._auditor.line(
            "credentials.vended",
            {
                "request_id": request_id,
                **_caller(issuer, claims, grant),
                "source_ip": source_ip,
                "role_arn": params["RoleArn"],
                "role_session_name": params["RoleSessionName"],
                "source_identity": params["SourceIdentity"],
                "duration_seconds": params["DurationSeconds"],
                "expiration": answer["Expiration"],
                "tags": {t["Key"]: t["Value"] for t in params["Tags"]},
                "dropped_claim_tags": dropped,
                "session_policy": "Policy" in params,
                "external_id_used": "ExternalId" in params,
                "access_key_id": answer["AccessKeyId"],
            },
            None,
        )
        answer["RequestId"] = request_id
        return answer
