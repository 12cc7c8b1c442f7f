"""The allow-list: the grant model (docs/design.md section 3) and the matching rules, pure (no AWS).

Deny by default: a caller gets nothing unless exactly one grant decides for it and that grant is
enabled, unexpired, pinned to the caller's unique id (if pinned) and admits its source address.
The table that stores grants is `chalicelib.grant_store`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.arns import GRANT_PRINCIPAL, POLICY_ARN, ROLE_ARN, principal_matches
from chalicelib.errors import CallerNotAllowed, SourceNotAllowed
from chalicelib.policy import MAX_POLICY_ARNS, PolicyError, minify_session_policy
from chalicelib.timestamps import format_timestamp, parse_timestamp

MIN_DURATION_SECONDS = 900
# AssumeRole from the service's own role session is role chaining: STS caps it at one hour.
MAX_DURATION_SECONDS = 3600
# The vending modes a grant's role may name (chalicelib.idp): "web-identity" is not role chaining,
# so its sessions may last up to the role's own maximum, which IAM caps at 12 hours.
ASSUME_ROLE_MODE = "assume-role"
WEB_IDENTITY_MODE = "web-identity"
VENDING_MODES = (ASSUME_ROLE_MODE, WEB_IDENTITY_MODE)
MAX_WEB_IDENTITY_DURATION_SECONDS = 43200
# A web identity token's `sub` (STS: 6-255 characters): the role and the grant that decided.
MAX_SUBJECT_CHARS = 255
MAX_REQUEST_TAGS = 47  # STS allows 50 session tags; stsvend sets three itself.
# Every identifier check is ASCII, spelled out: `\\d` and `\\w` also accept other scripts' digits
# and letters, which IAM and STS refuse.
# A grant names tag keys plainly, and no Unicode case folding can make one collide.
TAG_KEY = re.compile(r"[A-Za-z0-9 _.:/=+\-@]{1,128}")
SESSION_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EXTERNAL_ID_CHARS = "A-Za-z0-9_+=,.@:/-"
EXTERNAL_ID = re.compile(rf"^[{EXTERNAL_ID_CHARS}]{{2,1224}}$")
UNIQUE_ID = re.compile(r"^A[A-Z0-9]{15,127}$")

_GRANT_FIELDS = {
    "principal",
    "principal_id",
    "description",
    "enabled",
    "not_after",
    "source_cidrs",
    "request_tags",
    "roles",
    "allow_cognito",
}
_STORED_ONLY = {"account_id"}
BOOKKEEPING = {"version", "updated_at", "updated_by"}
_ROLE_FIELDS = {"role_arn", "max_duration_seconds", "session_policy", "policy_arns", "external_id", "mode"}


class GrantError(ValueError):
    """A grant that is not well formed; the message names the grant and the field."""


@dataclass(frozen=True)
class RoleGrant:
    role_arn: str
    max_duration_seconds: int = MAX_DURATION_SECONDS
    session_policy: str | None = None
    session_policy_document: str | None = None
    policy_arns: tuple[str, ...] = ()
    external_id: str | None = None
    mode: str = ASSUME_ROLE_MODE

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "role_arn": self.role_arn,
            "max_duration_seconds": self.max_duration_seconds,
            "policy_arns": list(self.policy_arns),
        }
        if self.session_policy is not None:
            item["session_policy"] = self.session_policy
            item["session_policy_document"] = self.session_policy_document
        if self.external_id is not None:
            item["external_id"] = self.external_id
        if self.mode != ASSUME_ROLE_MODE:
            item["mode"] = self.mode
        return item


@dataclass(frozen=True)
class Grant:
    principal: str
    account_id: str
    roles: tuple[RoleGrant, ...]
    principal_id: str | None = None
    description: str = ""
    enabled: bool = True
    not_after: datetime | None = None
    source_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    request_tags: tuple[str, ...] = ()
    # Admit callers signing with Amazon Cognito identity-pool credentials (every end user of an app).
    allow_cognito: bool = False

    @property
    def is_pattern(self) -> bool:
        return "*" in self.principal

    def matches(self, principal_arn: str) -> bool:
        return principal_matches(self.principal, principal_arn)

    # Derived once per grant (a cached grant serves every warm request): lookups by role ARN and by
    # lower-cased tag key, the first of any repeats winning as a scan in order would.
    @functools.cached_property
    def _roles_by_arn(self) -> dict[str, RoleGrant]:
        return {r.role_arn: r for r in reversed(self.roles)}

    @functools.cached_property
    def _tag_keys_by_lowered(self) -> dict[str, str]:
        return {k.lower(): k for k in reversed(self.request_tags)}

    @functools.cached_property
    def source_cidr_texts(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.source_cidrs)

    def role(self, role_arn: str) -> RoleGrant | None:
        return self._roles_by_arn.get(role_arn)

    def allowed_tag_key(self, key: str) -> str | None:
        """The grant's spelling of `key` (tag keys are case-insensitive), or None if not allowed.

        Grant keys are ASCII, so only an ASCII key can be one: Unicode lower-casing would let a
        lookalike (KELVIN SIGN for K) stand for a granted key.
        """
        if not key.isascii():
            return None
        return self._tag_keys_by_lowered.get(key.lower())

    def to_item(self) -> dict[str, Any]:
        """The stored form (docs/design.md section 3), as plain Python values."""
        item: dict[str, Any] = {
            "account_id": self.account_id,
            "principal": self.principal,
            "description": self.description,
            "enabled": self.enabled,
            "source_cidrs": [str(c) for c in self.source_cidrs],
            "request_tags": list(self.request_tags),
            "roles": [r.to_item() for r in self.roles],
        }
        if self.principal_id is not None:
            item["principal_id"] = self.principal_id
        if self.not_after is not None:
            item["not_after"] = format_timestamp(self.not_after)
        if self.allow_cognito:
            item["allow_cognito"] = True
        return item


def decision_subject(grant_principal: str, role_arn: str) -> str:
    """The `sub` of a web identity token: the target role and the grant that decided, which a
    target role's trust policy pins (`<issuer>:sub`). Neither holds `|`, so it splits back."""
    return f"{role_arn}|{grant_principal}"


def _fail(principal: Any, field_name: str, problem: str) -> GrantError:
    return GrantError(f"grant {principal!r}: {field_name} {problem}".replace(":  ", ": "))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def parse_role(
    raw: Any,
    principal: str,
    index: int,
    resolve_policy: Callable[[str], Any] | None,
) -> RoleGrant:
    where = f"roles[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(principal, where, "must be an object")
    allowed = _ROLE_FIELDS | ({"session_policy_document"} if resolve_policy is None else set())
    unknown = set(raw) - allowed
    if unknown:
        raise _fail(principal, where, f"has unknown field(s): {', '.join(sorted(unknown))}")
    role_arn = raw.get("role_arn")
    if not isinstance(role_arn, str) or not ROLE_ARN.fullmatch(role_arn):
        raise _fail(principal, f"{where}.role_arn", f"is not an IAM role ARN: {role_arn!r}")
    mode = raw.get("mode", ASSUME_ROLE_MODE)
    if not isinstance(mode, str) or mode not in VENDING_MODES:
        raise _fail(principal, f"{where}.mode", f"must be one of {', '.join(VENDING_MODES)}")
    duration = _int(raw.get("max_duration_seconds", MAX_DURATION_SECONDS))
    longest, why = MAX_DURATION_SECONDS, " (AssumeRole by the service is role chaining)"
    if mode == WEB_IDENTITY_MODE:
        longest, why = MAX_WEB_IDENTITY_DURATION_SECONDS, " (the longest session IAM allows a role)"
        if len(decision_subject(principal, role_arn)) > MAX_SUBJECT_CHARS:
            raise _fail(principal, f"{where}.mode", f"web-identity needs the role ARN and principal within"
                        f" {MAX_SUBJECT_CHARS - 1} characters together (the token's sub)")
        if raw.get("external_id") is not None:
            raise _fail(principal, f"{where}.external_id", "is not sent by AssumeRoleWithWebIdentity;"
                        " in web-identity mode the role's trust policy pins the token's sub instead")
    if duration is None or not MIN_DURATION_SECONDS <= duration <= longest:
        raise _fail(
            principal,
            f"{where}.max_duration_seconds",
            f"must be a whole number from {MIN_DURATION_SECONDS} to {longest}{why}",
        )
    policy_name = raw.get("session_policy")
    document: str | None = None
    if policy_name is not None:
        if not isinstance(policy_name, str) or not SESSION_POLICY_NAME.fullmatch(policy_name):
            raise _fail(principal, f"{where}.session_policy", "must be a policy name")
        source = resolve_policy(policy_name) if resolve_policy else raw.get("session_policy_document")
        if source is None:
            raise _fail(principal, f"{where}.session_policy", f"names an unknown policy {policy_name!r}")
        try:
            document = minify_session_policy(source)
        except PolicyError as exc:
            raise _fail(principal, f"{where}.session_policy {policy_name!r}", str(exc)) from None
    elif resolve_policy is None and raw.get("session_policy_document") is not None:
        raise _fail(principal, f"{where}.session_policy_document", "needs a session_policy name")
    policy_arns = _strings(raw.get("policy_arns", []))
    if policy_arns is None or not all(POLICY_ARN.fullmatch(a) for a in policy_arns):
        raise _fail(principal, f"{where}.policy_arns", "must be a list of IAM policy ARNs")
    if len(policy_arns) > MAX_POLICY_ARNS:
        raise _fail(principal, f"{where}.policy_arns", f"may name at most {MAX_POLICY_ARNS}")
    external_id = raw.get("external_id")
    if external_id is not None and (
        not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id)
    ):
        raise _fail(principal, f"{where}.external_id", f"must be 2-1224 characters of [{EXTERNAL_ID_CHARS}]")
    return RoleGrant(
        role_arn=role_arn,
        max_duration_seconds=duration,
        session_policy=policy_name,
        session_policy_document=document,
        policy_arns=tuple(policy_arns),
        external_id=external_id,
        mode=mode,
    )


def parse_grant(raw: Any, *, resolve_policy: Callable[[str], Any] | None = None) -> Grant:
    """Build a Grant from the file form (with `resolve_policy`) or the stored form (without).

    The file form names session policies; the stored form carries their documents and the
    principal's `account_id`, and may hold bookkeeping attributes, which are ignored.
    """
    if not isinstance(raw, Mapping):
        raise GrantError("a grant must be a JSON object")
    principal = raw.get("principal")
    if not isinstance(principal, str):
        raise GrantError(f"grant {principal!r}: principal must be a string")
    allowed = _GRANT_FIELDS | (set() if resolve_policy else _STORED_ONLY | BOOKKEEPING)
    unknown = set(raw) - allowed
    if unknown:
        raise _fail(principal, "", f"has unknown field(s): {', '.join(sorted(unknown))}")
    m = GRANT_PRINCIPAL.fullmatch(principal)
    if not m:
        raise _fail(
            principal,
            "principal",
            "must be arn:aws:iam::<12-digit account>:role/NAME or user/NAME (no path; `*` only"
            " in NAME, never in the account)",
        )
    account_id = m.group(2)
    if resolve_policy is None and raw.get("account_id") != account_id:
        raise _fail(principal, "account_id", f"must be the principal's account {account_id}")
    principal_id = raw.get("principal_id")
    if principal_id is not None:
        if not isinstance(principal_id, str) or not UNIQUE_ID.fullmatch(principal_id):
            raise _fail(principal, "principal_id", "must be an IAM unique id (AROA…/AIDA…)")
        if "*" in principal:
            raise _fail(principal, "principal_id", "cannot pin a pattern principal")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(principal, "description", "must be a string")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(principal, "enabled", "must be true or false")
    allow_cognito = raw.get("allow_cognito", False)
    if not isinstance(allow_cognito, bool):
        raise _fail(principal, "allow_cognito", "must be true or false")
    not_after = None
    if raw.get("not_after") is not None:
        value = raw["not_after"]
        try:
            if not isinstance(value, str):
                raise ValueError
            not_after = parse_timestamp(value)
        except ValueError:
            raise _fail(principal, "not_after", "must be a UTC time like 2027-06-30T00:00:00Z") from None
    cidrs = _strings(raw.get("source_cidrs", []))
    if cidrs is None:
        raise _fail(principal, "source_cidrs", "must be a list of CIDR strings")
    try:
        networks = tuple(ipaddress.ip_network(c, strict=True) for c in cidrs)
    except ValueError as exc:
        raise _fail(principal, "source_cidrs", f"has a bad CIDR ({exc})") from None
    tags = _strings(raw.get("request_tags", []))
    if tags is None or not all(TAG_KEY.fullmatch(t) for t in tags):
        raise _fail(principal, "request_tags", "must be a list of session tag keys")
    if any(t.lower().startswith(("aws:", "stsvend:")) for t in tags):
        raise _fail(principal, "request_tags", "may not allow aws: or stsvend: keys")
    if len({t.lower() for t in tags}) != len(tags) or len(tags) > MAX_REQUEST_TAGS:
        raise _fail(principal, "request_tags", f"must be at most {MAX_REQUEST_TAGS} distinct keys")
    raw_roles = raw.get("roles")
    if not isinstance(raw_roles, (list, tuple)) or not raw_roles:
        raise _fail(principal, "roles", "must be a non-empty list")
    roles = tuple(parse_role(r, principal, i, resolve_policy) for i, r in enumerate(raw_roles))
    if len({r.role_arn for r in roles}) != len(roles):
        raise _fail(principal, "roles", "lists a role twice")
    return Grant(
        principal=principal,
        account_id=account_id,
        roles=roles,
        principal_id=principal_id,
        description=description,
        enabled=enabled,
        not_after=not_after,
        source_cidrs=networks,
        request_tags=tuple(tags),
        allow_cognito=allow_cognito,
    )


@dataclass(frozen=True)
class BrokenGrant:
    """A stored item that does not parse. It still takes part in matching, and denies if it decides."""

    principal: str
    problem: str

    @property
    def is_pattern(self) -> bool:
        return "*" in self.principal

    def matches(self, principal_arn: str) -> bool:
        return principal_matches(self.principal, principal_arn)


AnyGrant = Grant | BrokenGrant


def specificity(principal: str) -> int:
    """How specific a pattern is: its literal characters. `*` adds nothing (it may match nothing),
    so `role/ci-**` ties with `role/ci-*` instead of outranking it."""
    return len(principal) - principal.count("*")


def case_collisions(principals: Iterable[str]) -> list[list[str]]:
    """Principals that differ only in case, grouped (each group in input order, two or more).

    IAM names are unique regardless of case and matching ignores case, so such grants would all
    match the same callers; the table's key is case-sensitive and keeps them all.
    """
    groups: dict[str, list[str]] = {}
    for principal in principals:
        groups.setdefault(principal.lower(), []).append(principal)
    return [group for group in groups.values() if len(group) > 1]


def deciding_candidates(grants: Iterable[AnyGrant], principal_arn: str) -> list[AnyGrant]:
    """The most specific matching grants: the exact ones if any, else the patterns with the most
    literal characters. One decides; more than one is ambiguous; none, nothing matches."""
    exact: list[AnyGrant] = []
    best: list[AnyGrant] = []
    for grant in grants:
        if not grant.matches(principal_arn):
            continue
        if not grant.is_pattern:
            exact.append(grant)
        elif not best or specificity(grant.principal) > specificity(best[0].principal):
            best = [grant]
        elif specificity(grant.principal) == specificity(best[0].principal):
            best.append(grant)
    return exact or best


def deciding_grant(grants: Iterable[AnyGrant], principal_arn: str) -> AnyGrant | None:
    """The one grant that decides, or None: nothing matches, or the best matches are ambiguous
    (two exact principals differing only in case, or equally specific patterns) and so deny."""
    candidates = deciding_candidates(grants, principal_arn)
    return candidates[0] if len(candidates) == 1 else None


_NO_GRANT = "no grant allows this caller"


# On the warm path (bench/README.md, "Warm vend overhead"): callers come back from the same few
# addresses, and parsing the address and each network with `ipaddress` is the costliest step of a
# grant decision. Keyed by the grant's CIDRs as text (grants with the same networks share entries).
# A bad address raises ValueError, which is never cached.
@functools.lru_cache(maxsize=4096)
def _source_allowed(source_ip: str, cidrs: tuple[str, ...]) -> bool:
    address = ipaddress.ip_address(source_ip)
    return any(address in ipaddress.ip_network(cidr) for cidr in cidrs)


def authorize_caller(
    grants: Iterable[AnyGrant],
    principal_arn: str,
    unique_id: str,
    source_ip: str,
    now: datetime,
) -> Grant:
    """The grant under which this caller may ask for credentials, or the reason it may not.

    An ambiguous match and a stored grant that does not parse deny with the same words as no grant
    at all; the audit line alone gets which grants and what is wrong (`detail`).
    """
    candidates = deciding_candidates(grants, principal_arn)
    if not candidates:
        raise CallerNotAllowed(_NO_GRANT)
    if len(candidates) > 1:
        names = ", ".join(sorted(g.principal for g in candidates))
        raise CallerNotAllowed(_NO_GRANT, detail=f"ambiguous: equally specific grants match: {names}")
    (grant,) = candidates
    if isinstance(grant, BrokenGrant):
        raise CallerNotAllowed(_NO_GRANT, detail=f"the deciding stored grant does not parse: {grant.problem}")
    if not grant.enabled:
        raise CallerNotAllowed("the caller's grant is disabled")
    if grant.not_after is not None and now >= grant.not_after:
        raise CallerNotAllowed("the caller's grant has expired")
    if grant.principal_id is not None and grant.principal_id != unique_id:
        raise CallerNotAllowed("the caller's unique id does not match its grant (principal was recreated?)")
    if grant.source_cidrs:
        try:
            allowed = _source_allowed(source_ip, grant.source_cidr_texts)
        except ValueError:
            raise SourceNotAllowed("the caller's source address is unknown") from None
        if not allowed:
            raise SourceNotAllowed("the caller's source address is not allowed by its grant")
    return grant
