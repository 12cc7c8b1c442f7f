"""Audit: exactly one structured log line per decision on every route (docs/design.md §5), and one metric
per credentials decision.

Events (chalicelib/contract.py, DECISIONS): `credentials.vended` / `credentials.denied`,
`roles.listed` / `roles.denied`, `whoami.answered` / `whoami.denied`; and `issuer.published`, one
line per issuer document served (answered without IAM auth, and not a decision). A denial carries
the caller's `code` and `reason`, and, when the service knows more than it may tell the caller (a
stored grant that does not parse, an ambiguous match), `detail` for the operator.

The log line carries the vended `access_key_id` (CloudTrail's join key) and never the secret key or
session token: records are built from an explicit list of fields, not from the STS answer.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from chalicelib.contract import (
    DECISIONS,
    DENIED_METRIC,
    EVENTS,
    NAMESPACE,
    PUBLISHED,
    SERVICE,
    VENDED_METRIC,
)
from chalicelib.identity import Caller

# The one source of the powertools service name and metrics namespace (chalicelib/contract.py):
# passed explicitly to the Logger, Metrics and Tracer (which then ignore POWERTOOLS_SERVICE_NAME /
# _METRICS_NAMESPACE); .chalice/config.json does not set them (tests/unit/test_config.py holds it so).
_ANSWERED = {route: answered for route, (answered, _) in DECISIONS.items()}
_DENIED = {route: denied for route, (_, denied) in DECISIONS.items()}
logger = Logger(service=SERVICE)
# The metric is printed in two writes (line, newline): under `chalice local`, which serves requests on
# threads, another thread's audit line could land between them. One writer at a time keeps every
# audit record on a line of its own.
_write_lock = threading.Lock()


def caller_fields(caller: Caller | None) -> dict[str, Any]:
    if caller is None:
        return {"caller_arn": None}
    return {
        "caller_arn": caller.arn,
        "caller_principal": caller.principal_arn,
        "caller_account": caller.account_id,
        "caller_user_id": caller.user_id,
        "source_ip": caller.source_ip,
        "user_agent": caller.user_agent,
        "caller_cognito_identity_pool": caller.cognito_identity_pool,
    }


class Auditor:
    def __init__(self, log: Logger = logger) -> None:
        self._log = log

    def vended(
        self,
        request_id: str,
        caller: Caller,
        params: dict[str, Any],
        answer: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        fields = {
            "event": _ANSWERED["credentials"],
            "request_id": request_id,
            **caller_fields(caller),
            "role_arn": params["RoleArn"],
            "role_session_name": params["RoleSessionName"],
            "source_identity": params["SourceIdentity"],
            "duration_seconds": params["DurationSeconds"],
            "expiration": answer["Expiration"],
            "tags": {tag["Key"]: tag["Value"] for tag in params["Tags"]},
            "session_policy": "Policy" in params,
            "external_id_used": "ExternalId" in params,
            "access_key_id": answer["AccessKeyId"],
        }
        if extra:
            fields.update(extra)  # the identity-provider mode's token subject
        with _write_lock:
            self._log.info("credentials vended", extra=fields)
            self._metric(VENDED_METRIC, None)

    def answered(
        self, route: str, request_id: str, caller: Caller, extra: dict[str, Any] | None = None
    ) -> None:
        """A read-only route (`roles`, `whoami`) answered its caller."""
        event = _ANSWERED[route]
        fields = {"event": event, "request_id": request_id, **caller_fields(caller), **(extra or {})}
        with _write_lock:
            self._log.info(event.replace(".", " "), extra=fields)

    def published(self, document: str, request_id: str, source_ip: str | None, status: int) -> None:
        fields = {"event": PUBLISHED, "request_id": request_id, "document": document,
                  "source_ip": source_ip, "status": status}
        with _write_lock:
            self._log.info("issuer document served", extra=fields)

    def denied(
        self,
        request_id: str,
        caller: Caller | None,
        code: str,
        message: str,
        request: dict[str, Any] | None = None,
        *,
        route: str = "credentials",
        detail: str | None = None,
    ) -> None:
        fields = {
            "event": _DENIED[route],
            "request_id": request_id,
            **caller_fields(caller),
            **(request or {}),
            "code": code,
            "reason": message,
        }
        if detail is not None:
            fields["detail"] = detail
        with _write_lock:
            self._log.warning(f"{route} denied", extra=fields)
            if route == "credentials":
                self._metric(DENIED_METRIC, code)

    def line(self, event: str, fields: dict[str, Any], denied_code: str | None) -> None:
        """One `credentials.vended` / `credentials.denied` line of a route outside the IAM flow (the
        OIDC route, `route` "oidc/credentials"), with its metric. `fields` are given in full."""
        if event not in EVENTS:
            raise ValueError(f"{event!r} is not an audit event of chalicelib/contract.py")
        record = {"event": event, "route": "oidc/credentials", **fields}
        with _write_lock:
            if event.endswith(".denied"):
                self._log.warning(event.replace(".", " "), extra=record)
                self._metric(DENIED_METRIC, denied_code)
            else:
                self._log.info(event.replace(".", " "), extra=record)
                self._metric(VENDED_METRIC, None)

    @staticmethod
    def _metric(name: str, code: str | None) -> None:
        with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            if code is not None:
                metric.add_dimension(name="Code", value=code)
