"""The API's OpenAPI 3 description, generated from the Chalice app and the service's own limits.

`python -m stsvend.checkout.openapi` (from a checkout) writes docs/openapi.json; `--check` fails when the
published file is out of date. The routes, their methods and their auth come from `app.routes`;
the request limits come from chalicelib, so the description cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stsvend.checkout.checkout import Checkout

PUBLISHED = Path("docs") / "openapi.json"


def _error_codes() -> dict[int, list[str]]:
    from chalicelib import errors

    by_status: dict[int, list[str]] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.StsvendError):
            if value is not errors.StsvendError:
                by_status.setdefault(value.status, []).append(value.code)
    return {status: sorted(set(codes)) for status, codes in sorted(by_status.items())}


def _schemas() -> dict[str, Any]:
    from chalicelib import grants, vending
    from chalicelib.arns import ROLE_ARN

    # Published for the commercial partition, where the service runs; a deployment in aws-cn or
    # aws-us-gov accepts only its own partition's ARNs.
    arn = {
        "type": "string",
        "pattern": ROLE_ARN.pattern.replace("aws(?:-cn|-us-gov)?", "aws", 1),
        "description": "An IAM role ARN in the service's partition.",
    }
    return {
        "CredentialRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["role_arn"],
            "properties": {
                "role_arn": arn,
                "duration_seconds": {
                    "type": "integer",
                    "minimum": grants.MIN_DURATION_SECONDS,
                    "maximum": grants.MAX_WEB_IDENTITY_DURATION_SECONDS,
                    "description": "Default: the grant's maximum for the role (at most 3600 in"
                    " assume-role mode, 43200 in web-identity mode).",
                },
                "tags": {
                    "type": "object",
                    "maxProperties": grants.MAX_REQUEST_TAGS,
                    # ASCII here; the service also takes Unicode letters, numbers and spaces.
                    "propertyNames": {"pattern": r"^(?![aA][wW][sS]:)[A-Za-z0-9 _.:/=+\-@]{1,128}$"},
                    "additionalProperties": {
                        "type": "string",
                        "pattern": rf"^[A-Za-z0-9 _.:/=+\-@]{{0,{vending.MAX_TAG_VALUE}}}$",
                    },
                    "description": "Session tags; only keys the caller's grant lists (case-insensitive,"
                    " each key once).",
                },
                "session_name": {"type": "string", "pattern": vending.SESSION_NAME.pattern},
            },
        },
        "Credentials": {
            "type": "object",
            "required": ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"],
            "properties": {
                "Version": {"type": "integer", "enum": [1]},
                "AccessKeyId": {"type": "string"},
                "SecretAccessKey": {"type": "string"},
                "SessionToken": {"type": "string"},
                "Expiration": {"type": "string", "format": "date-time"},
                "AssumedRoleArn": {"type": "string"},
                "RoleSessionName": {"type": "string"},
                "SourceIdentity": {"type": "string"},
                "RequestId": {"type": "string"},
            },
        },
        "Roles": {
            "type": "object",
            "required": ["Principal", "Roles", "RequestId"],
            "properties": {
                "Principal": {"type": "string"},
                "Grant": {"type": "string"},
                "NotAfter": {"type": ["string", "null"]},
                "RequestTags": {"type": "array", "items": {"type": "string"}},
                "Roles": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "RoleArn": {"type": "string"},
                            "MaxDurationSeconds": {"type": "integer"},
                            "SessionPolicy": {"type": ["string", "null"]},
                            "PolicyArns": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "RequestId": {"type": "string"},
            },
        },
        "Whoami": {
            "type": "object",
            "required": ["Arn", "PrincipalArn", "Account", "IdentityMode", "RequestId"],
            "properties": {
                "Arn": {"type": "string"},
                "PrincipalArn": {"type": "string"},
                "Account": {"type": "string"},
                "UserId": {"type": "string"},
                "SessionName": {"type": ["string", "null"]},
                "SourceIp": {"type": "string"},
                "IdentityMode": {"type": "string", "enum": ["apigateway", "sts-proof"]},
                "RequestId": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["Code", "Message", "RequestId"],
            "additionalProperties": False,
            "properties": {
                "Code": {"type": "string"},
                "Message": {"type": "string"},
                "RequestId": {"type": "string"},
            },
        },
    }


_OK = {"credentials": "Credentials", "roles": "Roles", "whoami": "Whoami", "oidc_credentials": "Credentials"}
_SUMMARY = {
    "credentials": "Vend AssumeRole credentials for a granted role (credential_process format)",
    "roles": "The roles the caller may request, with their limits",
    "whoami": "The caller as the service sees it",
    "oidc_credentials": "Vend credentials to a CI job for its OIDC token (no AWS credentials needed)",
}


# The issuer's public documents (chalicelib.idp): no auth, cacheable, their own shapes.
_PUBLIC = {
    "openid_configuration": "The issuer's OpenID Provider metadata (identity-provider mode; public)",
    "jwks": "The issuer's public signing keys, a JWKS (identity-provider mode; public)",
}


def _public_operation(name: str) -> dict[str, Any]:
    document = {"type": "object", "description": "A public OIDC document (RFC 8414 / RFC 7517)."}
    return {
        "operationId": name,
        "summary": _PUBLIC[name],
        "security": [],
        "responses": {
            "200": {
                "description": "OK",
                "headers": {"Cache-Control": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": document}},
            },
            "404": {
                "description": "NotFound: the service has no issuer configured",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }


def build(app: Any) -> dict[str, Any]:
    from chalice.app import IAMAuthorizer

    codes = _error_codes()
    paths: dict[str, Any] = {}
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            name = entry.view_name
            if name in _PUBLIC:
                paths.setdefault(path, {})[method.lower()] = _public_operation(name)
                continue
            responses: dict[str, Any] = {
                "200": {
                    "description": "OK",
                    "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}},
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{_OK[name]}"}}
                    },
                }
            }
            for status, status_codes in codes.items():
                if method == "GET" and status in (413,):
                    continue
                responses[str(status)] = {
                    "description": ", ".join(status_codes),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            operation: dict[str, Any] = {
                "operationId": name,
                "summary": _SUMMARY[name],
                # The one route without IAM auth takes a CI system's OIDC token (docs/ci-oidc.md).
                "security": (
                    [{"sigv4": []}, {"stsProof": []}]
                    if isinstance(entry.authorizer, IAMAuthorizer)
                    else [{"oidcToken": []}]
                ),
                "responses": responses,
            }
            if method == "POST":
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/CredentialRequest"}}
                    },
                }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stsvend",
            "version": "1",
            "description": "Audited AWS credential vending. Every route requires AWS SigV4 (API Gateway"
            " AWS_IAM auth); the local stage instead takes an X-Stsvend-Identity proof. The exception is"
            " POST /oidc/credentials, which takes a CI job's OIDC token as a bearer token.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                },
                "stsProof": {"type": "apiKey", "name": "X-Stsvend-Identity", "in": "header"},
                "oidcToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def render(root: Path) -> str:
    app = Checkout.open(root).import_app()
    return json.dumps(build(app.app), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stsvend.checkout.openapi", description=__doc__)
    parser.add_argument("--root", default=".", help="the stsvend checkout")
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is stale")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    text = render(root)
    target = root / PUBLISHED
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            print(f"{PUBLISHED} is out of date: run python -m stsvend.checkout.openapi", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
