"""Every route is behind IAM auth but the OIDC one and the issuer's two public documents, and
Chalice never answers with a stack trace."""

from __future__ import annotations

from chalice.app import IAMAuthorizer

import app as app_module


def test_every_route_has_the_iam_authorizer() -> None:
    """The documented exceptions, named here on purpose: a route added without IAM auth fails this
    test even when chalicelib/contract.py declares it (tests/unit/test_contract.py holds the rest)."""
    without_iam = {
        (path, method)
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
        if not isinstance(entry.authorizer, IAMAuthorizer)
    }
    assert without_iam == {
        # Public by nature: what STS reads to check the tokens of the identity-provider mode.
        ("/.well-known/openid-configuration", "GET"),
        ("/.well-known/jwks.json", "GET"),
        # The documented exception: the function verifies a CI job's OIDC token itself.
        ("/oidc/credentials", "POST"),
    }
    for path, method in without_iam:
        assert app_module.app.routes[path][method].authorizer is None
    assert len(app_module.app.routes) > len(without_iam)


def test_debug_is_off() -> None:
    assert app_module.app.debug is False
