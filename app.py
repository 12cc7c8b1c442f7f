"""stsvend's routes. Every route is behind IAM (SigV4) auth but three: `POST /oidc/credentials`, where
a CI job without AWS credentials shows its OIDC token and the function verifies it itself
(docs/threat-model.md §8, "A caller of the OIDC route"), and the issuer's two public documents (the
identity-provider mode, chalicelib.idp). chalicelib decides everything."""

from __future__ import annotations

import functools
import gc
import importlib.util
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

# Lambda's init phase builds a large graph of objects that live as long as the process (the
# modules, botocore's models and clients): no cyclic garbage collection rescans it while it is
# built, and it is frozen out of every later collection once built (end of this module).
_IN_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
if _IN_LAMBDA:
    gc.disable()

from chalice.app import Chalice, ConvertToMiddleware, IAMAuthorizer, Request, Response  # noqa: E402

from chalicelib.audit import logger  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.contract import ROUTES, SERVICE  # noqa: E402
from chalicelib.errors import InternalError, InvalidRequest, StsvendError  # noqa: E402
from chalicelib.service import Incoming, Stsvend  # noqa: E402


class _ThreadSafeChalice(Chalice):
    """Chalice keeps the request being served on the app object. Lambda serves one request at a
    time, but `chalice local` serves each on its own thread over one app: a shared attribute would
    let one request be decided on another's caller. Keep it per thread."""

    _requests = threading.local()

    @property
    def current_request(self) -> Request | None:
        return getattr(self._requests, "request", None)

    @current_request.setter
    def current_request(self, request: Request | None) -> None:
        self._requests.request = request


# The audit logger (powertools, JSON) owns the "stsvend" logger; Chalice must not reconfigure it.
# `app.debug` stays False, its default: Chalice would otherwise answer with stack traces.
app = _ThreadSafeChalice(app_name="stsvend", configure_logs=False)
iam = IAMAuthorizer()
# Lambda context (function, request id, cold start) on every log line. Never the event, whatever
# POWERTOOLS_LOGGER_LOG_EVENT says: it holds the caller's session token and identity proof.
app.register_middleware(
    ConvertToMiddleware(functools.partial(logger.inject_lambda_context, log_event=False))
)
_tracing = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")
if _tracing and importlib.util.find_spec("aws_xray_sdk") is None:
    # Packaged by a plain `chalice deploy`, without `make package-prep` (which vendors the SDK):
    # Lambda still traces each invocation, but without the subsegments of the AWS calls.
    logger.warning("the X-Ray SDK is not in the package: run `make package-prep` before deploying")
elif _tracing:
    # X-Ray in dev and prod. Imported only then, since the X-Ray SDK's import is on the cold path
    # (bench/README.md, cold start, the row with tracing).
    from aws_lambda_powertools import Tracer

    # botocore only: in `apigateway` mode (dev, prod) the function calls nothing else (the
    # sts-proof check's own HTTP call is then not a subsegment). Patching every library the X-Ray
    # SDK knows (its default) imports sqlite3 and http.client's wrappers, on the cold path
    # (bench/README.md, "Cold start of the deployment package", the tracer's `patch_modules`).
    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
    # Never the response as trace metadata: it holds the vended secret key and session token.
    capture = functools.partial(tracer.capture_lambda_handler, capture_response=False)
    app.register_middleware(ConvertToMiddleware(capture))
_service: Stsvend | None = None


def service() -> Stsvend:
    global _service
    if _service is None:
        _service = Stsvend.from_settings(Settings.from_env())
    return _service


def use_service(replacement: Stsvend | None) -> None:
    """Serve with `replacement` (tests, benchmarks); None builds it from the environment again."""
    global _service
    _service = replacement


if _IN_LAMBDA:
    # In Lambda, a missing setting fails the cold start, not the first caller's request; the AWS
    # clients a vend uses are created in the init phase too (bench/README.md says why).
    try:
        service().create_clients()
    finally:
        gc.freeze()
        gc.enable()


# What each route's audit line is (chalicelib/contract.py): a decision's route, or a document's name.
_AUDITED_AS = {route.path: route.audited_as for route in ROUTES}


@app.middleware("http")
def _chalice_rejections_in_the_service_shape(
    request: Any, get_response: Callable[[Any], Response]
) -> Response:
    """Chalice answers a wrong Content-Type or Accept itself; give those the stable error shape too,
    and audit them as the route audits its own answers."""
    response = get_response(request)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "RequestId" not in body:
        context = request.context or {}
        request_id = str(context.get("requestId") or uuid.uuid4())
        error: StsvendError = InvalidRequest(str(body.get("Message")))
        # A path of no route (an event API Gateway would not send) is audited as a credentials denial.
        audited_as = _AUDITED_AS.get(str(request.path), "credentials")
        source_ip = (context.get("identity") or {}).get("sourceIp")
        try:
            service().rejected(audited_as, request_id, error.message, source_ip)
        except Exception:  # noqa: BLE001 - a service that cannot start answers as every route does
            logger.exception("unexpected error", extra={"request_id": request_id})
            error = InternalError("the request failed; nothing was vended")
        response = _error_response(error, request_id)
    return response


def _error_response(error: StsvendError, request_id: str) -> Response:
    return Response(
        body={"Code": error.code, "Message": error.message, "RequestId": request_id},
        status_code=error.status,
        headers={"Cache-Control": "no-store", **error.headers},
    )


def _respond(operation: Callable[[Stsvend, Incoming], dict[str, Any]], route: str) -> Response:
    """Serve `route` (its path relative to the API base, which an identity proof is bound to)."""
    request = app.current_request
    assert request is not None  # Chalice sets it before calling a view
    raw_body = request.raw_body
    incoming = Incoming.of(
        request.context,
        request.headers,
        raw_body.encode() if isinstance(raw_body, str) else raw_body,
        request.method,
        route,
    )
    try:
        answer = operation(service(), incoming)
        return Response(body=answer, status_code=200, headers={"Cache-Control": "no-store"})
    except StsvendError as exc:
        error = exc
    except Exception:  # noqa: BLE001 - last resort: fail closed, log the cause, show no detail
        logger.exception("unexpected error", extra={"request_id": incoming.request_id})
        error = InternalError("the request failed; nothing was vended")
    return _error_response(error, incoming.request_id)


@app.route("/credentials", methods=["POST"], authorizer=iam)
def credentials() -> Response:
    return _respond(Stsvend.vend, "/credentials")


@app.route("/roles", methods=["GET"], authorizer=iam)
def roles() -> Response:
    return _respond(Stsvend.roles, "/roles")


@app.route("/whoami", methods=["GET"], authorizer=iam)
def whoami() -> Response:
    return _respond(Stsvend.whoami, "/whoami")


# The issuer's public side (chalicelib.idp): what STS reads to check the tokens the service signs.
# Public by nature, so without IAM auth; each answer is still audited.
_PUBLIC_MAX_AGE = "public, max-age=300"


def _published(document: str) -> Response:
    request = app.current_request
    assert request is not None
    context = request.context or {}
    request_id = str(context.get("requestId") or uuid.uuid4())
    source_ip = (context.get("identity") or {}).get("sourceIp")
    try:
        body = service().published(document, request_id, source_ip)
    except StsvendError as exc:
        return _error_response(exc, request_id)
    except Exception:  # noqa: BLE001 - fail closed, log the cause, show no detail
        logger.exception("unexpected error", extra={"request_id": request_id})
        return _error_response(InternalError("the document cannot be served"), request_id)
    headers: dict[str, str | list[str]] = {
        "Content-Type": "application/json",
        "Cache-Control": _PUBLIC_MAX_AGE,
    }
    return Response(body=body, status_code=200, headers=headers)


@app.route("/.well-known/openid-configuration", methods=["GET"])
def openid_configuration() -> Response:
    return _published("openid-configuration")


@app.route("/.well-known/jwks.json", methods=["GET"])
def jwks() -> Response:
    return _published("jwks")


# No IAM authorizer: the documented exception (docs/threat-model.md §8). The function verifies the
# bearer token against the reviewed issuers; API Gateway throttles the route on its own
# (.chalice/package-overrides.json); every decision is audited like the other routes'.
@app.route("/oidc/credentials", methods=["POST"])
def oidc_credentials() -> Response:
    return _respond(Stsvend.oidc_vend, "/oidc/credentials")
