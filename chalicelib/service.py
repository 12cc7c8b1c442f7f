"""The one wiring place: builds the service from settings, and the three operations the routes call."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.audit import Auditor
from chalicelib.aws import AwsClients
from chalicelib.config import Settings
from chalicelib.errors import CallerNotAllowed, InternalError, StsvendError
from chalicelib.grants import Grant, GrantStore, authorize_caller
from chalicelib.identity import (
    ApiGatewayIdentity,
    Caller,
    IdentityResolver,
    StsProofIdentity,
    StsProofVerifier,
)
from chalicelib.vending import assume_role, parse_request, plan_assume_role


@dataclass(frozen=True)
class Incoming:
    """What the service needs of an HTTP request, independent of Chalice.

    `route` is the path relative to the API's base (`/credentials`): what an identity proof binds.
    """

    request_id: str
    context: Mapping[str, Any]
    headers: Mapping[str, str]
    body: bytes | None = None
    method: str = ""
    route: str = ""

    @classmethod
    def of(
        cls,
        context: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        body: bytes | None,
        method: str = "",
        route: str = "",
    ) -> Incoming:
        context = context or {}
        request_id = str(context.get("requestId") or uuid.uuid4())
        return cls(request_id, context, {k.lower(): v for k, v in headers.items()}, body, method, route)


def identity_resolver(settings: Settings, clients: AwsClients) -> IdentityResolver:
    """The identity mode, chosen once for the life of the service."""
    if settings.identity_mode == "apigateway":
        return ApiGatewayIdentity()
    verifier = StsProofVerifier(
        clients.sts_endpoint(), settings.server_ids, settings.region, clients.post
    )
    return StsProofIdentity(verifier)


class Stsvend:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        grants: GrantStore,
        auditor: Auditor,
        identity: IdentityResolver,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self._clients = clients
        self._grants = grants
        self._auditor = auditor
        self._identity = identity
        self._now = now

    @classmethod
    def from_settings(cls, settings: Settings, identity: IdentityResolver | None = None) -> Stsvend:
        """The service for `settings`; `identity` replaces the resolver the mode would get."""
        clients = AwsClients(settings.region)
        grants = GrantStore(clients.dynamodb, settings.grants_table, settings.grant_cache_seconds)
        resolver = identity if identity is not None else identity_resolver(settings, clients)
        return cls(settings, clients, grants, Auditor(), resolver)

    def caller(self, incoming: Incoming) -> Caller:
        return self._identity.resolve(incoming)

    def _grant_for(self, caller: Caller) -> Grant:
        grant = authorize_caller(
            self._grants.for_account(caller.account_id),
            caller.principal_arn,
            caller.unique_id,
            caller.source_ip,
            self._now(),
        )
        if caller.from_cognito and not grant.allow_cognito:
            # One identity-pool role stands for every end user of an app: a grant for it admits
            # them all, so it must say so.
            raise CallerNotAllowed(
                "the caller uses Amazon Cognito identity-pool credentials; its grant must set "
                '"allow_cognito": true to admit them'
            )
        return grant

    def vend(self, incoming: Incoming) -> dict[str, Any]:
        caller: Caller | None = None
        asked: dict[str, Any] = {}
        try:
            caller = self.caller(incoming)
            request = parse_request(incoming.body, self.settings.partition)
            asked = {"role_arn": request.role_arn, "requested_tags": sorted(request.tags)}
            grant = self._grant_for(caller)
            plan = plan_assume_role(caller, request, grant, incoming.request_id)
            asked = {
                "role_arn": request.role_arn,
                "role_session_name": plan.params["RoleSessionName"],
            }
            answer = assume_role(self._clients.sts(), plan)
        except StsvendError as exc:
            self._auditor.denied(incoming.request_id, caller, exc.code, exc.message, asked)
            raise
        except Exception:
            self._auditor.denied(incoming.request_id, caller, InternalError.code, "unexpected", asked)
            raise
        self._auditor.vended(incoming.request_id, caller, plan.params, answer)
        return {**answer, "RequestId": incoming.request_id}

    def roles(self, incoming: Incoming) -> dict[str, Any]:
        caller = self.caller(incoming)
        grant = self._grant_for(caller)
        return {
            "Principal": caller.principal_arn,
            "Grant": grant.principal,
            "NotAfter": grant.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if grant.not_after else None,
            "RequestTags": list(grant.request_tags),
            "Roles": [
                {
                    "RoleArn": role.role_arn,
                    "MaxDurationSeconds": role.max_duration_seconds,
                    "SessionPolicy": role.session_policy,
                    "PolicyArns": list(role.policy_arns),
                }
                for role in grant.roles
            ],
            "RequestId": incoming.request_id,
        }

    def whoami(self, incoming: Incoming) -> dict[str, Any]:
        caller = self.caller(incoming)
        return {
            "Arn": caller.arn,
            "PrincipalArn": caller.principal_arn,
            "Account": caller.account_id,
            "UserId": caller.user_id,
            "SessionName": caller.session_name,
            "SourceIp": caller.source_ip,
            "IdentityMode": self._identity.mode,
            "RequestId": incoming.request_id,
        }
