"""The published OpenAPI description is current, valid, and puts every route behind SigV4."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

import app as app_module
from stsvend.checkout.openapi import PUBLISHED, build

ROOT = Path(__file__).resolve().parents[2]


def test_published_description_is_generated_from_the_app() -> None:
    published = json.loads((ROOT / PUBLISHED).read_text(encoding="utf-8"))
    assert published == build(app_module.app), "docs/openapi.json is stale: run make openapi"


def test_description_is_valid_openapi_with_sigv4_everywhere() -> None:
    spec = build(app_module.app)
    validate(spec)  # type: ignore[arg-type]
    operations = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert {(p, m) for p, m, _ in operations} == {
        ("/credentials", "post"),
        ("/roles", "get"),
        ("/whoami", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/oidc/credentials", "post"),
    }
    for path, _, operation in operations:
        if path.startswith("/.well-known/"):
            assert operation["security"] == []  # the issuer's public documents
            continue
        if path == "/oidc/credentials":  # the route without IAM auth: a CI job's OIDC token
            assert operation["security"] == [{"oidcToken": []}]
        else:
            assert {"sigv4": []} in operation["security"]
        assert "401" in operation["responses"] and "503" in operation["responses"]
    assert spec["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
