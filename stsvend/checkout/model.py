"""The server's grant model, from the checkout's `chalicelib`: the one place stsvend imports it.

Importing this module outside a checkout command (a test, the local stack) opens the checkout around
the current directory first, so the model always comes from a checkout. `Checkout.open` loads
`chalicelib` from the checkout's files by location: importing this module leaves sys.path as it was
(tests/unit/test_checkout_model_import.py).
"""

import sys

from stsvend.checkout.checkout import Checkout

if "chalicelib.grants" not in sys.modules:
    Checkout.open()

from chalicelib.arns import GRANT_PRINCIPAL, ROLE_ARN  # noqa: E402
from chalicelib.config import AUDIENCE  # noqa: E402
from chalicelib.errors import ConfigError  # noqa: E402
from chalicelib.grant_store import (  # noqa: E402
    ATTRIBUTE_DEFINITIONS,
    KEY_SCHEMA,
    from_attribute,
    grant_from_item,
    to_attribute,
)
from chalicelib.grants import (  # noqa: E402
    BOOKKEEPING,
    EXTERNAL_ID,
    EXTERNAL_ID_CHARS,
    BrokenGrant,
    Grant,
    GrantError,
    case_collisions,
    deciding_candidates,
    decision_subject,
    parse_grant,
)
from chalicelib.idp import issuer_url  # noqa: E402
from chalicelib.jsontext import JsonTextError, loads_strict  # noqa: E402
from chalicelib.oidc.config import Issuer, OidcGrant, parse_file_entries  # noqa: E402

# What a grants file holds: IAM grants, and the OIDC issuers and grants (chalicelib.oidc.config).
Entry = Grant | Issuer | OidcGrant

__all__ = [
    "ATTRIBUTE_DEFINITIONS", "AUDIENCE", "BOOKKEEPING", "GRANT_PRINCIPAL", "ConfigError", "decision_subject",
    "issuer_url", "EXTERNAL_ID", "EXTERNAL_ID_CHARS", "KEY_SCHEMA", "ROLE_ARN",
    "BrokenGrant", "Entry", "Grant", "GrantError", "Issuer", "JsonTextError", "OidcGrant",
    "case_collisions", "deciding_candidates", "from_attribute", "parse_file_entries",
    "grant_from_item", "loads_strict", "parse_grant", "to_attribute",
]
