"""`stsvend local token --issuer NAME --claims JSON`: a token signed by one of the running local
stack's OIDC issuers, shaped like that CI system's (stsvend/local/oidc_issuer.py), printed on stdout.

The claims given replace the shape's (a JSON null removes a claim); `iss`, `aud`, `iat`, `nbf`
and `exp` are the issuer's and now's unless given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stsvend.checkout.local_state import read_state
from stsvend.errors import CommandError

MAX_CLAIMS_CHARS = 64 * 1024


def cmd_token(args: argparse.Namespace) -> int:
    from stsvend.checkout.checkout import Checkout

    root = Checkout.open(args.root).root
    state = read_state(root)
    issuers: dict[str, Any] = state.get("oidc_issuers") or {}
    if not args.issuer or args.issuer not in issuers:
        names = ", ".join(sorted(issuers)) or "none"
        raise CommandError("UnknownIssuer", f"--issuer must name a local OIDC issuer: {names}")
    claims = _claims(args.claims)
    issuer = issuers[args.issuer]
    try:
        from stsvend.local.oidc_issuer import Signer

        signer = Signer.load(issuer["kind"], issuer["issuer"], Path(issuer["key_file"]).read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError("LocalStackNotRunning", f"the issuer's key cannot be read ({exc})") from None
    print(signer.token(args.audience or issuer["audience"], **claims))
    return 0


def _claims(text: str) -> dict[str, Any]:
    if len(text) > MAX_CLAIMS_CHARS:
        raise CommandError("InvalidClaims", f"--claims is over {MAX_CLAIMS_CHARS} characters")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError("InvalidClaims", f"--claims is not JSON ({exc.args[0][:80]})") from None
    if not isinstance(value, dict):
        raise CommandError("InvalidClaims", "--claims must be a JSON object of claim to value")
    return value
