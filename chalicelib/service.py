"""The one wiring place: builds the service from settings, and the three operations the routes call."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from chalicelib.audit import Auditor
from chalicelib.aws import AwsClients
from chalicelib.config import Settings
from chalicelib.contract import DECISIONS
from chalicelib.errors import CallerNotAllowed, InternalError, InvalidRequest, StsvendError
from chalicelib.grant_store import GrantStore
from chalicelib.grants import WEB_IDENTITY_MODE, Grant, authorize_caller, decision_subject
from chalicelib.identity import (
    ApiGatewayIdentity,
    Caller,
    IdentityResolver,
    StsProofIdentity,
    StsProofVerifier,
)
from chalicelib.idp import Issuer, NotFound, vend_web_identity
from chalicelib.sts import assume_role
from chalicelib.timestamps import format_timestamp
from chalicelib.vending import CredentialRequest, Plan, parse_request, plan_assume_role


class Incoming(NamedTuple):
    """What the service needs of an HTTP request, independent of Chalice.

    `route` is the path relative to the API's base (`/credentials`): what an identity proof binds.
    `raw_headers` are as received; `headers` has their names lower-cased.
    """

    request_id: str
    context: Mapping[str, Any]
    raw_headers: Mapping[str, str]
    body: bytes | None = None
    method: str = ""
    route: str = ""

    @property
    def headers(self) -> Mapping[str, str]:
        # Built when read: only sts-proof mode reads headers (once), and API Gateway sends dozens.
        return {k.lower(): v for k, v in self.raw_headers.items()}

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
        return cls(request_id, context, headers, body, method, route)


def identity_resolver(settings: Settings, clients: AwsClients) -> IdentityResolver:
    """The identity mode, chosen once for the life of the service."""
    if settings.identity_mode == "apigateway":
        return ApiGatewayIdentity()
    verifier = StsProofVerifier(
        clients.sts_endpoint(), settings.server_ids, settings.region, clients.post
    )
    return StsProofIdentity(verifier)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Stsvend:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        grants: GrantStore,
        auditor: Auditor,
        identity: IdentityResolver,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self._clients = clients
        self._grants = grants
        self._auditor = auditor
        self._identity = identity
        self._now = now
        self.issuer: Issuer | None = None
        if settings.issuer_url is not None:
            self.issuer = Issuer(
                settings.issuer_url,
                settings.issuer_keys,
                settings.token_audience,
                lambda: clients.client("kms"),
            )
        # POST /oidc/credentials, built on its first request (it imports PyJWT and cryptography).
        self.oidc: Any = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        identity: IdentityResolver | None = None,
        *,
        clients: AwsClients | None = None,
        grants: GrantStore | None = None,
        auditor: Auditor | None = None,
    ) -> Stsvend:
        """The service for `settings`. Tests and benchmarks may hand in any collaborator: the
        identity resolver the mode would get, their own AWS clients (to watch or stub the calls),
        grant store or auditor."""
        clients = clients or AwsClients(settings.region)
        if grants is None:
            grants = GrantStore(clients.dynamodb, settings.grants_table, settings.grant_cache_seconds)
        resolver = identity if identity is not None else identity_resolver(settings, clients)
        return cls(settings, clients, grants, auditor or Auditor(), resolver)

    def create_clients(self) -> None:
        """Create the AWS clients a vend uses now instead of on the first request: Lambda calls this
        in its init phase (bench/README.md, "Cold start of the deployment package", says why)."""
        self._clients.dynamodb()
        self._clients.sts()

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

    def _denied(
        self,
        route: str,
        incoming: Incoming,
        caller: Caller | None,
        error: Exception,
        asked: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(error, StsvendError):
            code, message, detail = error.code, error.message, error.detail
        else:
            code, message, detail = InternalError.code, "unexpected", None
        self._auditor.denied(
            incoming.request_id, caller, code, message, asked, route=route, detail=detail
        )

    def vend(self, incoming: Incoming) -> dict[str, Any]:
        caller: Caller | None = None
        request: CredentialRequest | None = None
        plan: Plan | None = None
        try:
            caller = self._identity.resolve(incoming)
            request = parse_request(incoming.body, self.settings.partition)
            grant = self._grant_for(caller)
            plan = plan_assume_role(caller, request, grant, incoming.request_id)
            if plan.role.mode == WEB_IDENTITY_MODE:
                subject = decision_subject(grant.principal, plan.role.role_arn)
                audit = {"vending_mode": WEB_IDENTITY_MODE, "token_subject": subject}
                sts = self._clients.sts()
                answer = vend_web_identity(self.issuer, sts, plan, subject, incoming.request_id)
            else:
                audit = None
                answer = assume_role(self._clients.sts(), plan)
        except Exception as exc:
            # What was asked, as far as it got: built here, on denial only.
            asked: dict[str, Any] = {}
            if plan is not None and request is not None:
                asked = {"role_arn": request.role_arn, "role_session_name": plan.params["RoleSessionName"]}
            elif request is not None:
                asked = {"role_arn": request.role_arn, "requested_tags": sorted(request.tags)}
            self._denied("credentials", incoming, caller, exc, asked)
            raise
        self._auditor.vended(incoming.request_id, caller, plan.params, answer, audit)
        answer["RequestId"] = incoming.request_id  # the answer is this request's own dict
        return answer

    def roles(self, incoming: Incoming) -> dict[str, Any]:
        caller: Caller | None = None
        try:
            caller = self._identity.resolve(incoming)
            grant = self._grant_for(caller)
        except Exception as exc:
            self._denied("roles", incoming, caller, exc)
            raise
        self._auditor.answered("roles", incoming.request_id, caller, {"grant": grant.principal})
        return {
            "Principal": caller.principal_arn,
            "Grant": grant.principal,
            "NotAfter": format_timestamp(grant.not_after) if grant.not_after else None,
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
        caller: Caller | None = None
        try:
            caller = self._identity.resolve(incoming)
        except Exception as exc:
            self._denied("whoami", incoming, caller, exc)
            raise
        self._auditor.answered("whoami", incoming.request_id, caller)
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

    def published(self, document: str, request_id: str, source_ip: str | None) -> str:
        """The issuer's discovery document or JWKS (public, no caller); audited."""
        try:
            if self.issuer is None:
                raise NotFound("this service is not an identity provider (no STSVEND_ISSUER_URL)")
            if document == "jwks":
                body = self.issuer.jwks().decode("ascii")
            else:
                body = json.dumps(self.issuer.discovery(), separators=(",", ":"))
        except StsvendError as exc:
            self._auditor.published(document, request_id, source_ip, exc.status)
            raise
        self._auditor.published(document, request_id, source_ip, 200)
        return body

    def oidc_vend(self, incoming: Incoming) -> dict[str, Any]:
        """A CI job's OIDC token for credentials (chalicelib.oidc): the route without IAM auth."""
        if self.oidc is None:
            from chalicelib.oidc.vend import OidcVending

            self.oidc = OidcVending(self.settings, self._clients, self._grants, self._auditor, self._now)
        source_ip = (incoming.context.get("identity") or {}).get("sourceIp")
        answer: dict[str, Any] = self.oidc.vend(
            incoming.request_id, incoming.headers, incoming.body, source_ip
        )
        return answer

    def rejected(self, audited_as: str, request_id: str, message: str, source_ip: str | None) -> None:
        """Audit a request the web framework refused before any view ran (content type, accept), on
        the line its route writes (chalicelib/contract.py, Route.audited_as): a decision's denial, or
        for an issuer document the document's line with the status answered."""
        if audited_as in DECISIONS:
            self._auditor.denied(request_id, None, InvalidRequest.code, message, route=audited_as)
        else:
            self._auditor.published(audited_as, request_id, source_ip, InvalidRequest.status)
