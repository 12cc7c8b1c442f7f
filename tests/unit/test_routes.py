"""Every route is behind IAM auth but the OIDC one and the issuer's two public documents, and
Chalice never answers with a stack trace."""

from __future__ import annotations

from chalice.app import IAMAuthorizer

import app as app_module


def test_every_route_has_the_iam_authorizer() -> None:
    entries = [
        (path, method, entry)
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
    ]
    assert {(path, method) for path, method, _ in entries} == {
        ("/credentials", "POST"),
        ("/roles", "GET"),
        ("/whoami", "GET"),
        ("/.well-known/openid-configuration", "GET"),
        ("/.well-known/jwks.json", "GET"),
        ("/oidc/credentials", "POST"),
    }
    for path, method, entry in entries:
        if path.startswith("/.well-known/"):
            # Public by nature: what STS reads to check the tokens of the identity-provider mode.
            assert entry.authorizer is None and method == "GET"
            continue
        if (path, method) == ("/oidc/credentials", "POST"):
            # The documented exception: the function verifies a CI job's OIDC token itself.
            assert entry.authorizer is None
            continue
        assert isinstance(entry.authorizer, IAMAuthorizer), f"{method} {path} is not behind IAM auth"


def test_debug_is_off() -> None:
    assert app_module.app.debug is False
