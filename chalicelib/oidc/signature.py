"""The OIDC route's use of PyJWT (with cryptography): an issuer's public key from its JWK, and a
token's signature and registered claims verified with it. Everything else the route checks
(chalicelib.oidc.verify) runs without a JOSE library.

Imported with the route (chalicelib.oidc.vend), on its first request: never by the SigV4 routes.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import TokenRejected
from chalicelib.oidc.config import Issuer


def defer_import(name: str) -> None:
    """Register module `name` to load on first use (the standard library's LazyLoader) instead of
    when something imports it; nothing changes if it is already loaded.

    PyJWT imports `cryptography.x509` at its top for one use only: refusing an X.509 certificate as
    an HMAC secret. stsvend never accepts an HMAC algorithm and hands PyJWT a key object built from
    the issuer's JWK, so that module is never used here, yet parsing it is the largest part of the
    OIDC route's first import. Deferred, it still loads in full the moment anything touches it, so
    PyJWT behaves exactly as with an ordinary import."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return  # absent: the import that needs it fails as it would have
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


defer_import("cryptography.x509")

import jwt  # noqa: E402 - after the deferral above, which must precede PyJWT's import
from jwt.exceptions import (  # noqa: E402
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)


def public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The public key object of `jwk` for `alg` (PyJWT's PyJWK), or None if it does not parse."""
    try:
        return jwt.PyJWK(dict(jwk), alg).key
    except PyJWTError:
        return None


def decode(token: str, key: Any, alg: str, issuer: Issuer) -> dict[str, Any]:
    """The claims of `token` signed with `key` by `alg` alone, with `exp`, `iat`, `iss` and `aud`
    required and checked against `issuer` (and `nbf` if present); TokenRejected otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=list(issuer.audiences),
            issuer=issuer.issuer,
            leeway=issuer.leeway_seconds,
            options={"require": ["exp", "iat", "iss", "aud"], "verify_signature": True},
        )
    except ExpiredSignatureError:
        raise TokenRejected("the token has expired") from None
    except ImmatureSignatureError:
        raise TokenRejected("the token is not valid yet (nbf or iat in the future)") from None
    except InvalidAudienceError:
        raise TokenRejected(f"the token's audience is not one issuer {issuer.name} accepts") from None
    except MissingRequiredClaimError as exc:
        raise TokenRejected(f"the token has no {exc.claim} claim") from None
    except InvalidIssuerError:
        raise TokenRejected("the token's issuer is not trusted by stsvend") from None
    except InvalidSignatureError:
        raise TokenRejected("the token's signature does not verify") from None
    except InvalidIssuedAtError:
        raise TokenRejected("the token's iat is not a time") from None
    except PyJWTError as exc:
        raise TokenRejected(f"the token is not valid ({type(exc).__name__})") from None
    return claims
