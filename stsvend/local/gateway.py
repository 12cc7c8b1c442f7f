"""The local stack's API Gateway: the API in `apigateway` identity mode behind a front door on
loopback that checks each request's SigV4 signature as API Gateway's `AWS_IAM` authorization does
(service `execute-api`, the stack's region, a key it knows, a date within 15 minutes, the signature
recomputed with botocore's signer: `stsvend.local.guard.verify`), then hands the app the identity
block API Gateway would (`userArn`, `caller`, `accountId`, `accessKey`, `sourceIp`, `userAgent`).
So a plain SigV4 request (curl's `--aws-sigv4`, an SDK's signer) works against the local stack as
it does against a deployed stage, with no identity proof.

The keys it knows are the stack's IAM users' (`admin`, `service`, `sample-app`, `jenkins`), handed
over in the environment (never on the command line); a key it does not know, such as a vended
session's, is refused as API Gateway refuses an unknown key.

Run by the stack as `python -m stsvend.local.gateway --host H --port P --project-dir DIR`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from stsvend.local.guard import Key, Refusal, parse_signature, verify

KEYS_VARIABLE = "STSVEND_GATEWAY_KEYS"
SERVICE = "execute-api"
STAGE = "local"


@dataclass(frozen=True)
class Principal:
    """An IAM user the front door knows: its key, and who it is as IAM answers."""

    access_key_id: str
    secret_access_key: str
    arn: str
    account_id: str
    user_id: str


# API Gateway's error type per refusal (its `x-amzn-ErrorType` header); the body is {"message"}.
_ERROR_TYPES = {
    "missing": "MissingAuthenticationTokenException",
    "unknown_key": "UnrecognizedClientException",
    "token": "UnrecognizedClientException",
    "expired": "InvalidSignatureException",
    "signature": "InvalidSignatureException",
    "control": "AccessDeniedException",
}


def environ_of(method: str, path: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
    """The WSGI view of a request, as `guard.verify` reads it."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "RAW_URI": path,
        "QUERY_STRING": path.partition("?")[2],
    }
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "content-type":
            environ["CONTENT_TYPE"] = value
        elif lowered == "content-length":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + lowered.upper().replace("-", "_")] = value
    return environ


def authenticate(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    principals: dict[str, Principal],
    region: str,
    now: datetime.datetime,
) -> Principal:
    """The principal whose signature the request carries, or `Refusal`."""
    environ = environ_of(method, path, headers, body)
    signed = parse_signature(environ)
    if signed.service != SERVICE:
        raise Refusal("signature", f"Credential should be scoped to correct service: '{SERVICE}'.")
    if signed.region != region:
        raise Refusal("signature", f"Credential should be scoped to a valid region, not '{signed.region}'.")

    def lookup(key_id: str) -> Key | None:
        known = principals.get(key_id)
        return None if known is None else Key(known.secret_access_key, known.account_id)

    verify(environ, body or b"", lookup, now)
    return principals[signed.key_id]


def identity_block(principal: Principal, headers: dict[str, str], source_ip: str) -> dict[str, Any]:
    """`requestContext.identity` as API Gateway gives it for an IAM user."""
    user_agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
    return {
        "userArn": principal.arn,
        "caller": principal.user_id,
        "user": principal.user_id,
        "accountId": principal.account_id,
        "accessKey": principal.access_key_id,
        "sourceIp": source_ip,
        "userAgent": user_agent,
    }


def serve(host: str, port: int, project_dir: str, principals: dict[str, Principal]) -> None:
    from chalice import local
    from chalice.cli.factory import CLIFactory
    from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalDevServer, LocalGateway

    factory = CLIFactory(project_dir=project_dir, environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=STAGE)
    app_object = config.chalice_app  # sets the stage's environment, then imports app.py
    # As `chalice local` serves it: `current_request` per thread.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_object.__class__)
    app_object.__class__ = local.CustomLocalChalice
    # The stage runs in `sts-proof` mode; behind this front door it is what dev and prod are.
    os.environ["STSVEND_IDENTITY_MODE"] = "apigateway"
    os.environ.pop("STSVEND_SERVER_ID", None)
    region = os.environ["AWS_REGION"]
    current = threading.local()

    class VerifyingGateway(LocalGateway):
        def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
            now = datetime.datetime.now(datetime.UTC)
            try:
                current.principal = authenticate(method, path, dict(headers), body, principals, region, now)
            except Refusal as refusal:
                raise ForbiddenError(
                    {"x-amzn-ErrorType": _ERROR_TYPES.get(refusal.kind, "InvalidSignatureException")},
                    json.dumps({"message": refusal.message}).encode(),
                ) from None
            current.headers = dict(headers)
            return super().handle_request(method, path, headers, body)

        def _generate_lambda_event(self, method: str, path: str, headers: Any, body: Any) -> Any:
            event = super()._generate_lambda_event(method, path, headers, body)
            source_ip = event["requestContext"]["identity"].get("sourceIp", "127.0.0.1")
            block = identity_block(current.principal, current.headers, source_ip)
            event["requestContext"]["identity"] = block
            return event

    class Handler(ChaliceRequestHandler):
        def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any,
                     config: Any) -> None:
            self.local_gateway = VerifyingGateway(app_object, config)
            # BaseHTTPRequestHandler handles the request from its __init__: the gateway must be set.
            super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    # A backlog fit for concurrent callers, as the stack gives `chalice local` (stsvend/local/stack.py).
    local.ThreadedHTTPServer.request_queue_size = 128
    LocalDevServer(app_object, config, host, port, handler_cls=Handler).serve_forever()


def principals_from(text: str) -> dict[str, Principal]:
    entries = json.loads(text)
    return {entry["access_key_id"]: Principal(**entry) for entry in entries}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the stsvend API behind a local SigV4-checking front door")
    parser.add_argument("-H", "--host", required=True)
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--project-dir", required=True)
    args = parser.parse_args(argv)
    keys = os.environ.pop(KEYS_VARIABLE, "")
    if not keys:
        sys.exit(f"stsvend gateway: {KEYS_VARIABLE} names no keys")
    serve(args.host, args.port, args.project_dir, principals_from(keys))


if __name__ == "__main__":
    main()
