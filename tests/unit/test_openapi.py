"""The published OpenAPI description is valid, and puts every route behind SigV4 but the documented
exceptions (tests/unit/test_contract.py holds it to the contract and the app)."""

from __future__ import annotations

from openapi_spec_validator import validate

from stsvend.checkout.openapi import build


def test_description_is_valid_openapi_with_sigv4_everywhere() -> None:
    spec = build()
    validate(spec)  # type: ignore[arg-type]
    operations = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) == 6
    for path, _, operation in operations:
        if path.startswith("/.well-known/"):
            assert operation["security"] == []  # the issuer's public documents
            assert set(operation["responses"]) == {"200", "404"}
            continue
        if path == "/oidc/credentials":  # the route without IAM auth: a CI job's OIDC token
            assert operation["security"] == [{"oidcToken": []}]
        else:
            assert operation["security"] == [{"sigv4": []}, {"stsProof": []}]
        assert "401" in operation["responses"] and "503" in operation["responses"]
    assert spec["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
