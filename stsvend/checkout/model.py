"""The server's grant model, from the checkout's `chalicelib`: the one place stsvend imports it.

Importing this module outside a checkout command (a test, the local stack) opens the checkout around
the current directory first, so the model always comes from a checkout.
"""

import sys

from stsvend.checkout.checkout import Checkout

if "chalicelib.grants" not in sys.modules:
    Checkout.open()

from chalicelib.arns import ROLE_ARN  # noqa: E402
from chalicelib.grants import (  # noqa: E402
    BOOKKEEPING,
    EXTERNAL_ID,
    BrokenGrant,
    Grant,
    GrantError,
    from_attribute,
    grant_from_item,
    parse_grant,
    to_attribute,
)
from chalicelib.jsontext import JsonTextError, loads_strict  # noqa: E402

__all__ = [
    "BOOKKEEPING", "EXTERNAL_ID", "ROLE_ARN", "BrokenGrant", "Grant", "GrantError", "from_attribute",
    "grant_from_item", "JsonTextError", "loads_strict", "parse_grant", "to_attribute",
]
