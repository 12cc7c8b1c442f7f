"""Trusted OIDC issuers and the grants for OIDC callers: reviewed configuration, pure (no AWS, no JOSE).

Both live in the grants file and table, beside the IAM grants, under the partition `oidc` (which no
AWS account id can be): an issuer is stored as principal `issuer:<name>`, a grant as `grant:<name>`.
So `stsvend grants plan` shows an issuer's changes as it shows a grant's, and `apply` writes both.

An issuer names its CI system (`kind`): the kind says which claims are immutable identifiers, which
are names, which mark a pull-request context, which become session tags and which make the run
identity. Deny by default: an issuer with no audience, a shared issuer with no tenant pinned, or a
grant keyed on names alone (unless it opts in) does not parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.grants import BOOKKEEPING, MAX_REQUEST_TAGS, TAG_KEY, GrantError, RoleGrant, parse_role
from chalicelib.timestamps import format_timestamp, parse_timestamp

PARTITION = "oidc"
ISSUER_PREFIX = "issuer:"
GRANT_PREFIX = "grant:"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# Asymmetric JWS algorithms only (RFC 7518, RFC 8037): never `none`, never HMAC.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_AUDIENCES = 8
MAX_LEEWAY_SECONDS = 300
MAX_LIFETIME_SECONDS = 24 * 3600
MAX_CONDITION_VALUES = 32
# A claim value a grant can name: what the CI systems put in their identifiers, refs and names.
CLAIM_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?")
_HTTPS_URL = re.compile(r"https://[a-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?")
# The local stack's issuer: plain HTTP on a loopback address only.
_LOOPBACK_URL = re.compile(r"http://(?:127\.0\.0\.1|\[::1\]|localhost):[0-9]{1,5}(?:/[A-Za-z0-9._~/-]*)?")


def _pull_request_github(claims: Mapping[str, Any]) -> bool:
    # Untrusted code can run in these contexts (a fork's pull request, or a workflow it triggers).
    event = claims.get("event_name")
    ref = claims.get("ref")
    return event in _GITHUB_PR_EVENTS or (isinstance(ref, str) and ref.startswith("refs/pull/"))


_GITHUB_PR_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)


def _pull_request_gitlab(claims: Mapping[str, Any]) -> bool:
    # Merge request pipelines (fork merge requests included) and external pull requests.
    return claims.get("pipeline_source") in ("merge_request_event", "external_pull_request_event")


def _pull_request_buildkite(claims: Mapping[str, Any]) -> bool:
    # A build of a pull request names it (optional claim); a fork's branch is `owner:branch`.
    branch = claims.get("build_branch")
    pull = claims.get("build_pull_request")
    return (pull not in (None, "", "false", False)) or (isinstance(branch, str) and ":" in branch)


def _pull_request_circleci(claims: Mapping[str, Any]) -> bool:
    # A job re-run with SSH has a person at a shell inside it: not the reviewed pipeline.
    ref = claims.get("oidc.circleci.com/vcs-ref")
    rerun = claims.get("oidc.circleci.com/ssh-rerun")
    return rerun is True or (isinstance(ref, str) and ref.startswith("refs/pull/"))


@dataclass(frozen=True)
class Kind:
    """What stsvend knows of one CI system's tokens."""

    name: str
    prefix: str  # the run identity's prefix (SourceIdentity, RoleSessionName)
    issuer_forms: tuple[re.Pattern[str], ...]
    shared_issuers: frozenset[str]  # one issuer for every tenant: a tenant claim must be pinned
    tenant_claims: tuple[str, ...]
    id_claims: tuple[str, ...]  # immutable identifiers: a grant pins at least one
    name_claims: tuple[str, ...]  # names that can be re-registered: extra conditions only
    condition_claims: tuple[str, ...]  # every other claim a grant may name
    tags: tuple[tuple[str, str], ...]  # (session tag key, claim)
    run_claims: tuple[str, ...]
    pull_request: Callable[[Mapping[str, Any]], bool]
    algorithms: tuple[str, ...] = ("RS256",)

    @property
    def grant_claims(self) -> frozenset[str]:
        return frozenset((*self.id_claims, *self.name_claims, *self.condition_claims))


_HOST = r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
BUILDKITE_ISSUER = "https://agent.buildkite.com"

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="github-actions",
            prefix="gh",
            # github.com, its per-enterprise form, and GitHub Enterprise Server's.
            issuer_forms=(
                re.compile(r"https://token\.actions\.githubusercontent\.com(?:/[A-Za-z0-9-]{1,100})?"),
                re.compile(rf"https://{_HOST}/_services/token"),
            ),
            shared_issuers=frozenset({GITHUB_ISSUER}),
            tenant_claims=("repository_owner_id", "enterprise_id"),
            id_claims=("repository_id", "repository_owner_id"),
            name_claims=("repository", "repository_owner", "enterprise"),
            condition_claims=(
                "ref", "ref_type", "ref_protected", "environment", "event_name", "workflow_ref",
                "job_workflow_ref", "repository_visibility", "runner_environment", "actor_id",
            ),
            tags=(
                ("ci:repository", "repository"), ("ci:repository-id", "repository_id"),
                ("ci:owner-id", "repository_owner_id"), ("ci:ref", "ref"), ("ci:environment", "environment"),
                ("ci:workflow", "workflow_ref"), ("ci:event", "event_name"), ("ci:actor", "actor"),
                ("ci:run-id", "run_id"), ("ci:run-attempt", "run_attempt"), ("ci:sha", "sha"),
            ),
            run_claims=("repository_id", "run_id", "run_attempt"),
            pull_request=_pull_request_github,
        ),
        Kind(
            name="gitlab-ci",
            prefix="gl",
            issuer_forms=(re.compile(rf"https://{_HOST}(?:/[A-Za-z0-9._~-]+)*"),),
            shared_issuers=frozenset({"https://gitlab.com"}),
            tenant_claims=("namespace_id",),
            id_claims=("project_id", "namespace_id"),
            name_claims=("project_path", "namespace_path"),
            condition_claims=(
                "ref", "ref_type", "ref_protected", "environment", "environment_protected", "deployment_tier",
                "pipeline_source", "ci_config_ref_uri", "runner_environment", "user_id",
            ),
            tags=(
                ("ci:project", "project_path"), ("ci:project-id", "project_id"),
                ("ci:namespace-id", "namespace_id"), ("ci:ref", "ref"), ("ci:environment", "environment"),
                ("ci:pipeline-source", "pipeline_source"), ("ci:user", "user_login"),
                ("ci:pipeline-id", "pipeline_id"), ("ci:job-id", "job_id"), ("ci:sha", "sha"),
            ),
            run_claims=("project_id", "pipeline_id", "job_id"),
            pull_request=_pull_request_gitlab,
        ),
        Kind(
            name="buildkite",
            prefix="bk",
            issuer_forms=(re.compile(re.escape(BUILDKITE_ISSUER)),),
            shared_issuers=frozenset({BUILDKITE_ISSUER}),
            tenant_claims=("organization_id",),
            id_claims=("organization_id", "pipeline_id"),
            name_claims=("organization_slug", "pipeline_slug"),
            condition_claims=("build_branch", "build_tag", "step_key", "build_source"),
            tags=(
                ("ci:organization", "organization_slug"), ("ci:pipeline", "pipeline_slug"),
                ("ci:pipeline-id", "pipeline_id"), ("ci:ref", "build_branch"),
                ("ci:build-number", "build_number"), ("ci:job-id", "job_id"), ("ci:sha", "build_commit"),
            ),
            run_claims=("build_number", "job_id"),
            pull_request=_pull_request_buildkite,
        ),
        Kind(
            name="circleci",
            prefix="cc",
            # One issuer per organization: https://oidc.circleci.com/org/<organization id>.
            issuer_forms=(re.compile(r"https://oidc\.circleci\.com/org/[0-9a-f-]{36}"),),
            shared_issuers=frozenset(),
            tenant_claims=(),
            id_claims=("oidc.circleci.com/project-id",),
            name_claims=(),
            condition_claims=("oidc.circleci.com/vcs-ref", "oidc.circleci.com/vcs-origin"),
            tags=(
                ("ci:project-id", "oidc.circleci.com/project-id"),
                ("ci:ref", "oidc.circleci.com/vcs-ref"),
                ("ci:origin", "oidc.circleci.com/vcs-origin"),
            ),
            run_claims=("oidc.circleci.com/project-id",),
            pull_request=_pull_request_circleci,
        ),
    )
}


@dataclass(frozen=True)
class Issuer:
    """One trusted issuer, as reviewed: its exact `iss`, audiences, keys' location and limits."""

    name: str
    kind: Kind
    issuer: str  # the exact `iss`
    audiences: tuple[str, ...]
    jwks_uri: str | None = None  # None: from the issuer's discovery document
    algorithms: tuple[str, ...] = ("RS256",)
    max_lifetime_seconds: int = 3600
    max_age_seconds: int = 3600
    leeway_seconds: int = 60
    required_claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enabled: bool = True
    description: str = ""

    account_id = PARTITION

    @property
    def principal(self) -> str:
        return ISSUER_PREFIX + self.name

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "account_id": PARTITION,
            "principal": self.principal,
            "kind": self.kind.name,
            "issuer": self.issuer,
            "audiences": list(self.audiences),
            "algorithms": list(self.algorithms),
            "max_lifetime_seconds": self.max_lifetime_seconds,
            "max_age_seconds": self.max_age_seconds,
            "leeway_seconds": self.leeway_seconds,
            "required_claims": {k: list(v) for k, v in self.required_claims.items()},
            "enabled": self.enabled,
            "description": self.description,
        }
        if self.jwks_uri is not None:
            item["jwks_uri"] = self.jwks_uri
        return item


@dataclass(frozen=True)
class OidcGrant:
    """A grant for OIDC callers: an issuer's tokens whose claims hold these values get these roles."""

    name: str
    issuer: str  # an issuer's name
    claims: Mapping[str, tuple[str, ...]]  # claim -> the values it may have (one of)
    roles: tuple[RoleGrant, ...]
    description: str = ""
    enabled: bool = True
    not_after: datetime | None = None
    request_tags: tuple[str, ...] = ()
    pull_requests: bool = False  # admit pull-request contexts (untrusted code)
    names_only: bool = False  # keyed on names alone (which can be re-registered)

    account_id = PARTITION

    @property
    def principal(self) -> str:
        return GRANT_PREFIX + self.name

    def role(self, role_arn: str) -> RoleGrant | None:
        return next((r for r in self.roles if r.role_arn == role_arn), None)

    def allowed_tag_key(self, key: str) -> str | None:
        if not key.isascii():
            return None
        return next((k for k in self.request_tags if k.lower() == key.lower()), None)

    def matches(self, claims: Mapping[str, Any]) -> bool:
        return all(claim_text(claims.get(k)) in values for k, values in self.claims.items())

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "account_id": PARTITION,
            "principal": self.principal,
            "issuer": self.issuer,
            "claims": {k: list(v) for k, v in self.claims.items()},
            "description": self.description,
            "enabled": self.enabled,
            "request_tags": list(self.request_tags),
            "pull_requests": self.pull_requests,
            "names_only": self.names_only,
            "roles": [r.to_item() for r in self.roles],
        }
        if self.not_after is not None:
            item["not_after"] = format_timestamp(self.not_after)
        return item


def claim_text(value: Any) -> str | None:
    """A claim as the text grants compare: strings as they are, whole numbers and booleans in JSON's
    spelling (GitLab and GitHub send some ids and flags either way); anything else matches nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _fail(what: str, problem: str) -> GrantError:
    return GrantError(f"{what}: {problem}")


def _whole(raw: Mapping[str, Any], key: str, default: int, low: int, high: int, what: str) -> int:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        and not (hasattr(value, "to_integral_value") and value == value.to_integral_value())
    ):
        raise _fail(what, f"{key} must be a whole number")
    number = int(value)
    if not low <= number <= high:
        raise _fail(what, f"{key} must be from {low} to {high}")
    return number


def _bool(raw: Mapping[str, Any], key: str, default: bool, what: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise _fail(what, f"{key} must be true or false")
    return value


def _claim_map(raw: Any, what: str, key: str, allowed: frozenset[str] | None) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise _fail(what, f"{key} must be an object of claim to value (or list of values)")
    out: dict[str, tuple[str, ...]] = {}
    for claim, value in raw.items():
        if allowed is not None and claim not in allowed:
            raise _fail(what, f"{key} names claim {claim!r}, which this issuer's kind does not define")
        values = [value] if isinstance(value, str) else value
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= MAX_CONDITION_VALUES
            or not all(isinstance(v, str) and CLAIM_VALUE.fullmatch(v) for v in values)
        ):
            raise _fail(
                what, f"{key}.{claim} must be a printable ASCII string or a list of 1-{MAX_CONDITION_VALUES}"
            )
        out[str(claim)] = tuple(values)
    return out


_ISSUER_FIELDS = {
    "oidc_issuer",
    "kind",
    "issuer",
    "audiences",
    "jwks_uri",
    "algorithms",
    "max_lifetime_seconds",
    "max_age_seconds",
    "leeway_seconds",
    "required_claims",
    "enabled",
    "description",
}


def _url_ok(url: str) -> bool:
    return bool(_HTTPS_URL.fullmatch(url) or _LOOPBACK_URL.fullmatch(url))


def parse_issuer(raw: Mapping[str, Any], name: str) -> Issuer:
    what = f"oidc issuer {name!r}"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(what, "its name must be 1-63 lower-case letters, digits or -")
    unknown = set(raw) - _ISSUER_FIELDS
    if unknown:
        raise _fail(what, f"has unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    kind = KINDS.get(raw.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise _fail(what, f"kind must be one of {', '.join(sorted(KINDS))}")
    issuer = raw.get("issuer")
    if not isinstance(issuer, str) or not (
        any(f.fullmatch(issuer) for f in kind.issuer_forms) or _LOOPBACK_URL.fullmatch(issuer)
    ):
        raise _fail(what, f"issuer {issuer!r} is not a {kind.name} issuer URL (exact, no trailing /)")
    owner = next((k for k in KINDS.values() if issuer in k.shared_issuers), kind)
    if owner is not kind:
        raise _fail(what, f"issuer {issuer} is {owner.name}'s; its kind must say so")
    audiences = raw.get("audiences")
    if (
        not isinstance(audiences, list)
        or not 1 <= len(audiences) <= MAX_AUDIENCES
        or not all(isinstance(a, str) and CLAIM_VALUE.fullmatch(a) for a in audiences)
    ):
        raise _fail(what, f"audiences must list 1-{MAX_AUDIENCES} audiences (there is no default)")
    jwks_uri = raw.get("jwks_uri")
    if jwks_uri is not None and (not isinstance(jwks_uri, str) or not _url_ok(jwks_uri)):
        raise _fail(what, "jwks_uri must be an https:// URL")
    algorithms = raw.get("algorithms", list(kind.algorithms))
    if (
        not isinstance(algorithms, list)
        or not algorithms
        or not all(isinstance(a, str) and a in ASYMMETRIC_ALGORITHMS for a in algorithms)
    ):
        accepted = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        raise _fail(what, f"algorithms must list asymmetric algorithms: {accepted}")
    required = _claim_map(raw.get("required_claims", {}), what, "required_claims", None)
    if issuer in kind.shared_issuers and not any(c in required for c in kind.tenant_claims):
        raise _fail(
            what,
            f"{issuer} is shared by every {kind.name} tenant: required_claims must pin one of"
            f" {', '.join(kind.tenant_claims)}",
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(what, "description must be a string")
    return Issuer(
        name=name,
        kind=kind,
        issuer=issuer,
        audiences=tuple(audiences),
        jwks_uri=jwks_uri,
        algorithms=tuple(algorithms),
        max_lifetime_seconds=_whole(raw, "max_lifetime_seconds", 3600, 60, MAX_LIFETIME_SECONDS, what),
        max_age_seconds=_whole(raw, "max_age_seconds", 3600, 60, MAX_LIFETIME_SECONDS, what),
        leeway_seconds=_whole(raw, "leeway_seconds", 60, 0, MAX_LEEWAY_SECONDS, what),
        required_claims=required,
        enabled=_bool(raw, "enabled", True, what),
        description=description,
    )


_GRANT_FIELDS = {
    "oidc_grant",
    "issuer",
    "claims",
    "roles",
    "description",
    "enabled",
    "not_after",
    "request_tags",
    "pull_requests",
    "names_only",
}


def parse_oidc_grant(
    raw: Mapping[str, Any],
    name: str,
    issuers: Mapping[str, Issuer] | None,
    resolve_policy: Callable[[str], Any] | None = None,
) -> OidcGrant:
    """A grant for OIDC callers. With `issuers` (the file form), its issuer must be among them and
    its claims must be the issuer's kind's; the stored form is checked again when it is used."""
    what = f"oidc grant {name!r}"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(what, "its name must be 1-63 lower-case letters, digits or -")
    unknown = set(raw) - _GRANT_FIELDS
    if unknown:
        raise _fail(what, f"has unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    issuer_name = raw.get("issuer")
    if not isinstance(issuer_name, str):
        raise _fail(what, "issuer must name an oidc issuer")
    kind: Kind | None = None
    if issuers is not None:
        issuer = issuers.get(issuer_name)
        if issuer is None:
            raise _fail(what, f"issuer {issuer_name!r} is not configured")
        kind = issuer.kind
    claims = _claim_map(raw.get("claims"), what, "claims", kind.grant_claims if kind else None)
    if kind is not None:
        check_keyed(claims, kind, _bool(raw, "names_only", False, what), what)
    not_after = None
    if raw.get("not_after") is not None:
        try:
            not_after = parse_timestamp(str(raw["not_after"]))
        except ValueError:
            raise _fail(what, "not_after must be a UTC time like 2027-06-30T00:00:00Z") from None
    tags = raw.get("request_tags", [])
    if (
        not isinstance(tags, list)
        or len(tags) > MAX_REQUEST_TAGS
        or not all(isinstance(t, str) and TAG_KEY.fullmatch(t) for t in tags)
        or any(t.lower().startswith(("aws:", "stsvend:", "ci:")) for t in tags)
        or len({t.lower() for t in tags}) != len(tags)
    ):
        raise _fail(what, "request_tags must list distinct session tag keys (not aws:, stsvend: or ci:)")
    raw_roles = raw.get("roles")
    if not isinstance(raw_roles, list) or not raw_roles:
        raise _fail(what, "roles must be a non-empty list")
    roles = tuple(parse_role(r, what, i, resolve_policy) for i, r in enumerate(raw_roles))
    if len({r.role_arn for r in roles}) != len(roles):
        raise _fail(what, "roles lists a role twice")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(what, "description must be a string")
    return OidcGrant(
        name=name,
        issuer=issuer_name,
        claims=claims,
        roles=roles,
        description=description,
        enabled=_bool(raw, "enabled", True, what),
        not_after=not_after,
        request_tags=tuple(tags),
        pull_requests=_bool(raw, "pull_requests", False, what),
        names_only=_bool(raw, "names_only", False, what),
    )


def check_keyed(claims: Mapping[str, tuple[str, ...]], kind: Kind, names_only: bool, what: str) -> None:
    """A grant names an immutable identifier, or opts in to names alone (and names one)."""
    if any(c in claims for c in kind.id_claims):
        return
    if names_only and any(c in claims for c in kind.name_claims):
        return
    raise _fail(
        what,
        f"claims must pin one of {', '.join(kind.id_claims)} (immutable ids); names such as"
        f" {', '.join(kind.name_claims) or 'these'} can be re-registered by someone else, and key a"
        ' grant only with "names_only": true',
    )


@dataclass(frozen=True)
class BrokenEntry:
    """A stored item under the oidc partition that does not parse: it takes part in matching (by its
    issuer, if known) and denies if it decides."""

    principal: str
    problem: str
    issuer: str | None = None


@dataclass(frozen=True)
class OidcConfig:
    """The `oidc` partition as one configuration: the issuers by name and every grant."""

    issuers: Mapping[str, Issuer]  # by name
    grants: tuple[OidcGrant | BrokenEntry, ...]
    broken_issuers: tuple[BrokenEntry, ...] = ()

    def issuer_for(self, iss: str) -> Issuer | None:
        return next((i for i in self.issuers.values() if i.issuer == iss and i.enabled), None)


def config_from_items(items: Iterable[Mapping[str, Any]]) -> OidcConfig:
    """The stored form (plain values, DynamoDB's types already converted) as one configuration."""
    issuers: dict[str, Issuer] = {}
    broken_issuers: list[BrokenEntry] = []
    grant_items: list[Mapping[str, Any]] = []
    for item in items:
        principal = str(item.get("principal", ""))
        body = {k: v for k, v in item.items() if k not in ("account_id", "principal", *BOOKKEEPING)}
        if principal.startswith(ISSUER_PREFIX):
            name = principal[len(ISSUER_PREFIX) :]
            try:
                issuers[name] = parse_issuer(body, name)
            except (GrantError, ValueError, TypeError) as exc:
                broken_issuers.append(BrokenEntry(principal, str(exc)))
        else:
            grant_items.append(item)
    grants: list[OidcGrant | BrokenEntry] = []
    for item in grant_items:
        principal = str(item.get("principal", ""))
        body = {k: v for k, v in item.items() if k not in ("account_id", "principal", *BOOKKEEPING)}
        issuer = body.get("issuer") if isinstance(body.get("issuer"), str) else None
        try:
            if not principal.startswith(GRANT_PREFIX):
                raise GrantError(f"{principal!r} is neither issuer: nor grant:")
            grants.append(parse_oidc_grant(body, principal[len(GRANT_PREFIX) :], issuers))
        except (GrantError, ValueError, TypeError) as exc:
            grants.append(BrokenEntry(principal, str(exc), issuer))
    return OidcConfig(issuers, tuple(grants), tuple(broken_issuers))


def parse_file_entries(
    entries: Iterable[tuple[int, Mapping[str, Any]]], resolve_policy: Callable[[str], Any]
) -> list[Issuer | OidcGrant]:
    """The grants file's `oidc_issuer` and `oidc_grant` entries (index, entry), issuers first."""
    entries = list(entries)
    issuers: dict[str, Issuer] = {}
    out: list[Issuer | OidcGrant] = []
    for index, raw in entries:
        if "oidc_issuer" in raw:
            name = raw["oidc_issuer"]
            try:
                issuer = parse_issuer({k: v for k, v in raw.items() if k != "oidc_issuer"}, name)
            except GrantError as exc:
                raise GrantError(f"grants[{index}]: {exc}") from None
            if name in issuers:
                raise GrantError(f"grants[{index}]: oidc issuer {name!r} is configured twice")
            issuers[name] = issuer
            out.append(issuer)
    names: set[str] = set()
    for index, raw in entries:
        if "oidc_grant" in raw:
            name = raw["oidc_grant"]
            try:
                grant = parse_oidc_grant(
                    {k: v for k, v in raw.items() if k != "oidc_grant"}, name, issuers, resolve_policy
                )
            except GrantError as exc:
                raise GrantError(f"grants[{index}]: {exc}") from None
            if name in names:
                raise GrantError(f"grants[{index}]: oidc grant {name!r} is granted twice")
            names.add(name)
            out.append(grant)
    return out
