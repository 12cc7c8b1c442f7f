"""stsvend's routes. Every route is behind IAM (SigV4) auth; chalicelib decides everything."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from chalice import Chalice, IAMAuthorizer, Response

from chalicelib.config import Settings
from chalicelib.errors import InternalError, StsvendError
from chalicelib.service import Incoming, Stsvend

app = Chalice(app_name="stsvend")
app.debug = False  # Chalice would otherwise answer with stack traces.
iam = IAMAuthorizer()
_service: Stsvend | None = None


def service() -> Stsvend:
    global _service
    if _service is None:
        _service = Stsvend.from_settings(Settings.from_env())
    return _service


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # In Lambda, a missing setting fails the cold start, not the first caller's request.
    service()


def _respond(operation: Callable[[Stsvend, Incoming], dict[str, Any]]) -> Response:
    request = app.current_request
    incoming = Incoming.of(request.context, dict(request.headers), request.raw_body)
    try:
        body = operation(service(), incoming)
        return Response(body=body, status_code=200, headers={"Cache-Control": "no-store"})
    except StsvendError as exc:
        error = exc
    except Exception:
        app.log.exception("unexpected error")
        error = InternalError("the request failed; nothing was vended")
    return Response(
        body={"Code": error.code, "Message": error.message, "RequestId": incoming.request_id},
        status_code=error.status,
        headers={"Cache-Control": "no-store", **error.headers},
    )


@app.route("/credentials", methods=["POST"], authorizer=iam)
def credentials() -> Response:
    return _respond(Stsvend.vend)


@app.route("/roles", methods=["GET"], authorizer=iam)
def roles() -> Response:
    return _respond(Stsvend.roles)


@app.route("/whoami", methods=["GET"], authorizer=iam)
def whoami() -> Response:
    return _respond(Stsvend.whoami)
