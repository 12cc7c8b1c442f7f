"""The API's contract, the server's side: its routes, the error codes it answers with, and the audit
events and metrics it writes. `app.py`, `chalicelib/errors.py` and `chalicelib/audit.py` read it;
the `stsvend` command's side is `stsvend/contract.py` (the command never imports the server), and
`tests/unit/test_contract.py` holds the two together with `app.routes`, `docs/openapi.json` and the
alarms of `stsvend/ops/definitions.py`. A new route or error code starts here (docs/architecture.md,
"To change X, edit Y").
"""

from __future__ import annotations

from typing import NamedTuple

# How a route authenticates its caller.
IAM = "iam"  # API Gateway's AWS_IAM (SigV4); in `sts-proof` mode, an X-Stsvend-Identity proof
OIDC_TOKEN = "oidc-token"  # a CI job's OIDC token as a bearer token, verified by the function
PUBLIC = "public"  # the issuer's public documents (chalicelib.idp): no caller to authenticate


class Route(NamedTuple):
    method: str
    path: str
    view: str  # the app's view function, and the OpenAPI operation id
    auth: str
    answers: str  # the 200 answer's shape (an OpenAPI schema name)
    # Its audit line: a decision's, by its DECISIONS key; or an issuer document's PUBLISHED line,
    # by the document's name.
    audited_as: str


ROUTES = (
    Route("POST", "/credentials", "credentials", IAM, "Credentials", "credentials"),
    Route("GET", "/roles", "roles", IAM, "Roles", "roles"),
    Route("GET", "/whoami", "whoami", IAM, "Whoami", "whoami"),
    # Its decisions are credentials decisions (`route` "oidc/credentials" on the audit line).
    Route("POST", "/oidc/credentials", "oidc_credentials", OIDC_TOKEN, "Credentials", "credentials"),
    Route(
        "GET",
        "/.well-known/openid-configuration",
        "openid_configuration",
        PUBLIC,
        "OpenIdConfiguration",
        "openid-configuration",
    ),
    Route("GET", "/.well-known/jwks.json", "jwks", PUBLIC, "Jwks", "jwks"),
)

# A decision's audit line: what it is audited as -> (the event of an answer, the event of a denial).
DECISIONS = {
    "credentials": ("credentials.vended", "credentials.denied"),
    "roles": ("roles.listed", "roles.denied"),
    "whoami": ("whoami.answered", "whoami.denied"),
}
# Every event a decision's audit line can carry (`stsvend audit` reads exactly these).
EVENTS = tuple(event for pair in DECISIONS.values() for event in pair)
# One line per issuer document served: not a decision, so not among EVENTS.
PUBLISHED = "issuer.published"

# The code of a denial -> its HTTP status. Each is a class of chalicelib/errors.py; a denial's
# audit line carries it as `code`, and a credentials denial's metric as its `Code` dimension.
DENIALS = {
    "InvalidRequest": 400,
    "DurationNotAllowed": 400,
    "PolicyTooLarge": 400,
    "NotAuthenticated": 401,
    "CallerNotAllowed": 403,
    "SourceNotAllowed": 403,
    "RoleNotGranted": 403,
    "TagNotAllowed": 403,
    "PayloadTooLarge": 413,
    "AssumeRoleDenied": 502,
    "ServiceUnavailable": 503,
    "InternalError": 500,  # anything unexpected: it fails closed
}
# Answered by the issuer's public documents only (chalicelib.idp), never a decision's denial.
DOCUMENT_ERRORS = {"NotFound": 404}
# Every code an error answer's `Code` can hold -> its HTTP status.
ERRORS = {**DENIALS, **DOCUMENT_ERRORS}

# The metrics (CloudWatch embedded metric format): one per credentials decision.
SERVICE = "stsvend"  # the powertools service name and the metrics' `service` dimension
NAMESPACE = "stsvend"
VENDED_METRIC = "CredentialsVended"
DENIED_METRIC = "CredentialsDenied"  # with a `Code` dimension: the denial's code
