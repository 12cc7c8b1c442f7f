"""The API as the `stsvend` command relies on it: the routes (`stsvend.checkout.openapi` describes
them), every error code an answer can carry with the exit status the command maps it to, the denial
codes and audit events `stsvend audit` and the alarms read, and the metrics' names.

The command never imports the server: this is its own copy of the contract, and
`tests/unit/test_contract.py` holds it to the server's (`chalicelib/contract.py`), to `app.routes`,
`docs/openapi.json` and the alarms of `stsvend/ops/definitions.py`. Only the standard library, and
cheap to import: the client's cache hit may load it.
"""

from stsvend.errors import EXIT_DENIED, EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE

# How a route authenticates its caller (chalicelib/contract.py: IAM, OIDC_TOKEN, PUBLIC).
IAM = "iam"
OIDC_TOKEN = "oidc-token"
PUBLIC = "public"

# (method, path, operation id, auth, the 200 answer's shape)
ROUTES = (
    ("POST", "/credentials", "credentials", IAM, "Credentials"),
    ("GET", "/roles", "roles", IAM, "Roles"),
    ("GET", "/whoami", "whoami", IAM, "Whoami"),
    ("POST", "/oidc/credentials", "oidc_credentials", OIDC_TOKEN, "Credentials"),
    ("GET", "/.well-known/openid-configuration", "openid_configuration", PUBLIC, "OpenIdConfiguration"),
    ("GET", "/.well-known/jwks.json", "jwks", PUBLIC, "Jwks"),
)

# The code of a denial -> (its HTTP status, the command's exit status). The order is the one
# `stsvend audit --code` lists them in.
DENIALS = {
    "InvalidRequest": (400, EXIT_USAGE),
    "DurationNotAllowed": (400, EXIT_USAGE),
    "PolicyTooLarge": (400, EXIT_USAGE),
    "NotAuthenticated": (401, EXIT_DENIED),
    "CallerNotAllowed": (403, EXIT_DENIED),
    "SourceNotAllowed": (403, EXIT_DENIED),
    "RoleNotGranted": (403, EXIT_DENIED),
    "TagNotAllowed": (403, EXIT_DENIED),
    "PayloadTooLarge": (413, EXIT_USAGE),
    "AssumeRoleDenied": (502, EXIT_DENIED),  # the target role refused: a denial, not an outage
    "ServiceUnavailable": (503, EXIT_UNAVAILABLE),
    "InternalError": (500, EXIT_OTHER),
}
DENIAL_CODES = tuple(DENIALS)
# Every code an error answer can carry: the denials, and the issuer documents' NotFound.
ERRORS = {**DENIALS, "NotFound": (404, EXIT_OTHER)}


def exit_status(status: int, code: object) -> int:
    """The command's exit status for an error answer: by its code, when the code is the service's and
    comes with its status; else by the HTTP status alone (API Gateway's own answers, a proxy's)."""
    known = ERRORS.get(code) if isinstance(code, str) else None
    if known is not None and known[0] == status:
        return known[1]
    if status in (400, 413):
        return EXIT_USAGE
    if status in (401, 403):
        return EXIT_DENIED
    if status in (429, 502, 503, 504):
        return EXIT_UNAVAILABLE
    return EXIT_OTHER


# Every event of a decision's audit line (in the order the saved Logs Insights queries list them).
AUDIT_EVENTS = (
    "credentials.vended",
    "credentials.denied",
    "roles.listed",
    "whoami.answered",
    "roles.denied",
    "whoami.denied",
)
# One line per issuer document served (identity-provider mode), not a decision: `stsvend audit`
# passes over it.
PUBLISHED_EVENT = "issuer.published"

# The metrics' namespace, `service` dimension and names; a denial's metric has a `Code` dimension.
NAMESPACE = "stsvend"
SERVICE = "stsvend"
VENDED_METRIC = "CredentialsVended"
DENIED_METRIC = "CredentialsDenied"
