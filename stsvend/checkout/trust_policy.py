"""`stsvend trust-policy`: the trust policy a target role needs, rendered from the checkout's
template. The local stack's deployer role gets its trust policy from the same renderer."""

from __future__ import annotations

import copy
import difflib
import json
import re
from pathlib import Path
from typing import Any

from stsvend.arns import NAME
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.grants_file import MAX_SESSION_POLICY_FILE_BYTES, read_json_file
from stsvend.checkout.model import EXTERNAL_ID, EXTERNAL_ID_CHARS, ROLE_ARN, GrantError
from stsvend.errors import EXIT_USAGE, CommandError
from stsvend.terminal import identifier as printable

SERVICE_ROLE_PLACEHOLDER = "${STSVEND_SERVICE_ROLE_ARN}"
EXTERNAL_ID_PLACEHOLDER = "${EXTERNAL_ID}"
CALLER_TAG_KEY = "aws:RequestTag/stsvend:caller"
# A pattern of the `stsvend:caller` session tag: an IAM caller's ARN (`arn:`) or an OIDC caller,
# `oidc:<issuer>:<grant>` (chalicelib.oidc.vend), with StringLike's `*` and `?`; STS's tag charset.
CALLER_PATTERN = re.compile(r"(arn|oidc):[A-Za-z0-9_.:/=+@*?-]{1,251}")


def read_template(checkout: Checkout) -> dict[str, Any]:
    try:
        template = read_json_file(checkout.trust_template, MAX_SESSION_POLICY_FILE_BYTES)
    except GrantError as exc:
        raise CommandError("InvalidTemplate", f"the trust policy template cannot be read: {exc}") from None
    if not isinstance(template, dict):
        raise CommandError("InvalidTemplate", f"{checkout.trust_template} is not a JSON object")
    return template


def _substitute(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in replacements.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_substitute(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, replacements) for k, v in value.items()}
    return value


def _drop_external_id(policy: dict[str, Any]) -> None:
    for statement in policy.get("Statement", []):
        conditions = statement.get("Condition", {})
        for operator in list(conditions):
            conditions[operator].pop("sts:ExternalId", None)
            if not conditions[operator]:
                del conditions[operator]
        if "Condition" in statement and not conditions:
            del statement["Condition"]


def _set_callers(policy: dict[str, Any], callers: list[str]) -> None:
    """Every statement's `stsvend:caller` condition names these patterns (one as a string)."""
    value: str | list[str] = callers[0] if len(callers) == 1 else list(callers)
    for statement in policy.get("Statement", []):
        tests = statement.get("Condition", {}).get("StringLike", {})
        if CALLER_TAG_KEY in tests:
            tests[CALLER_TAG_KEY] = value


def fill_trust_template(
    template: dict[str, Any], service_arn: str, external_id: str | None, callers: list[str] | None = None
) -> dict[str, Any]:
    """The template with the service's principal filled in, the external id condition filled in
    or, without one, removed, and the caller patterns (default: the template's) set."""
    policy = copy.deepcopy(template)
    if external_id is None:
        _drop_external_id(policy)
    if callers:
        _set_callers(policy, callers)
    replacements = {SERVICE_ROLE_PLACEHOLDER: service_arn}
    if external_id is not None:
        replacements[EXTERNAL_ID_PLACEHOLDER] = external_id
    rendered: dict[str, Any] = _substitute(policy, replacements)
    if "${" in json.dumps(rendered):
        raise CommandError(
            "InvalidTemplate", "the trust policy template has a placeholder stsvend does not fill"
        )
    return rendered


def render_trust_policy(
    template: dict[str, Any],
    service_role_arn: str,
    external_id: str | None,
    callers: list[str] | None = None,
) -> dict[str, Any]:
    """The target role's trust policy for a deployed stsvend: its role, checked, filled in. `callers`
    are the `stsvend:caller` patterns it admits (default: the template's `arn:*`, every IAM caller
    the grants allow); an OIDC caller's sessions are admitted only by an `oidc:` pattern.

    All must be ASCII, checked here whatever the model's patterns accept: IAM takes nothing else,
    and a pattern's `\\d` or `\\w` also matches full-width digits and letters of any script."""
    if not (service_role_arn.isascii() and ROLE_ARN.fullmatch(service_role_arn)):
        raise CommandError(
            "InvalidArgument",
            f"--service-role must be an IAM role ARN, not {service_role_arn!r}",
            EXIT_USAGE,
        )
    if external_id is not None and not (external_id.isascii() and EXTERNAL_ID.fullmatch(external_id)):
        raise CommandError(
            "InvalidArgument", f"--external-id must be 2-1224 characters of [{EXTERNAL_ID_CHARS}]", EXIT_USAGE
        )
    for pattern in callers or []:
        if not (pattern.isascii() and CALLER_PATTERN.fullmatch(pattern)):
            raise CommandError(
                "InvalidArgument",
                f"--allowed-caller must be a pattern of arn:... (an IAM caller) or oidc:<issuer>:<grant>"
                f" (an OIDC caller) of at most 256 of [A-Za-z0-9_.:/=+@*?-], not {pattern!r}",
                EXIT_USAGE,
            )
    return fill_trust_template(template, service_role_arn, external_id, callers)


# --- merging into a role's trust policy --------------------------------------------------------------

# IAM's limit on a trust policy is 2,048 characters by default and at most 4,096 (a quota increase).
MAX_TRUST_POLICY_BYTES = 64 * 1024
ROLE_NAME = re.compile(NAME)


def _statements(policy: dict[str, Any], where: str) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise CommandError("InvalidTrustPolicy", f"{where}: Statement is not a list of objects")
    return statements


def merge_trust_policy(current: dict[str, Any] | None, ours: dict[str, Any], where: str) -> dict[str, Any]:
    """`current` with stsvend's statements in it: a statement with one of their Sids is replaced in
    place, the others are appended, every other statement (other principals) is kept as it is.
    Merging the result again changes nothing."""
    if current is None:
        return copy.deepcopy(ours)
    if not isinstance(current, dict):
        raise CommandError("InvalidTrustPolicy", f"{where} is not a JSON object")
    wanted = {s["Sid"]: s for s in _statements(ours, "the trust policy template")}
    merged = copy.deepcopy(current)
    statements: list[dict[str, Any]] = []
    placed: set[str] = set()
    for statement in _statements(current, where):
        sid = statement.get("Sid")
        if isinstance(sid, str) and sid in wanted:
            if sid not in placed:
                statements.append(copy.deepcopy(wanted[sid]))
                placed.add(sid)
            continue
        statements.append(statement)
    statements += [copy.deepcopy(s) for sid, s in wanted.items() if sid not in placed]
    merged["Statement"] = statements
    merged.setdefault("Version", ours.get("Version", "2012-10-17"))
    return merged


def policy_diff(current: dict[str, Any] | None, merged: dict[str, Any], name: str) -> str:
    """A unified diff of the two policies as JSON, every line escaped for a terminal; empty if equal."""
    before = json.dumps(current, indent=2).splitlines() if current is not None else []
    after = json.dumps(merged, indent=2).splitlines()
    lines = difflib.unified_diff(before, after, f"{name} (now)", f"{name} (with stsvend)", lineterm="")
    return "\n".join(printable(line) for line in lines)


def read_policy_file(path: Path) -> dict[str, Any]:
    try:
        policy = read_json_file(path, MAX_TRUST_POLICY_BYTES)
    except GrantError as exc:
        raise CommandError("InvalidTrustPolicy", str(exc), EXIT_USAGE) from None
    if not isinstance(policy, dict):
        raise CommandError("InvalidTrustPolicy", f"{path} is not a JSON object", EXIT_USAGE)
    return policy


def trusts(policy: dict[str, Any], service_role_arn: str) -> bool:
    """Whether an Allow statement of `policy` names `service_role_arn` for sts:AssumeRole (what a
    deny or a condition does is not judged here: this is the warning's check, not IAM's)."""
    for statement in _statements(policy, "the role's trust policy"):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        aws = principal.get("AWS", []) if isinstance(principal, dict) else []
        actions = statement.get("Action", [])
        if service_role_arn in ([aws] if isinstance(aws, str) else aws) and "sts:AssumeRole" in (
            [actions] if isinstance(actions, str) else actions
        ):
            return True
    return False


# --- the identity-provider mode (chalicelib.idp) --------------------------------------------------

WEB_IDENTITY_ACTIONS = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"]


def provider_path(issuer: str) -> str:
    """The issuer as IAM names its OIDC provider and condition keys: host and path, no scheme."""
    return issuer.split("://", 1)[1]


def oidc_provider_arn(role_arn: str, issuer: str) -> str:
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    return f"arn:{partition}:iam::{account}:oidc-provider/{provider_path(issuer)}"


def web_identity_trust_policy(
    role_arn: str, issuer: str, audience: str, grants: list[str] | None = None
) -> dict[str, Any]:
    """The target role's trust policy for a role granted in web-identity mode: tokens of the
    service's issuer (its IAM OIDC provider in the role's account), for this audience and for a
    `sub` naming this role and the given grant principals (any grant of the service, without)."""
    from stsvend.checkout.model import AUDIENCE, GRANT_PRINCIPAL, ConfigError, decision_subject, issuer_url

    if not (role_arn.isascii() and ROLE_ARN.fullmatch(role_arn)):
        raise CommandError("InvalidArgument", f"--role must be an IAM role ARN, not {role_arn!r}", EXIT_USAGE)
    try:
        issuer = issuer_url(issuer)
    except ConfigError as exc:
        raise CommandError(
            "InvalidArgument", str(exc).replace("STSVEND_ISSUER_URL", "--issuer"), EXIT_USAGE
        ) from None
    if not AUDIENCE.fullmatch(audience):
        raise CommandError(
            "InvalidArgument", "--audience must be 1-255 of letters, digits and ._:/-", EXIT_USAGE
        )
    for grant in grants or []:
        if not grant.isascii() or not GRANT_PRINCIPAL.fullmatch(grant):
            raise CommandError(
                "InvalidArgument", f"--grant must be a grant's principal, not {grant!r}", EXIT_USAGE
            )
    prefix = provider_path(issuer)
    if grants:
        subject: dict[str, Any] = {
            "StringEquals": {f"{prefix}:sub": [decision_subject(g, role_arn) for g in grants]}
        }
    else:
        subject = {"StringLike": {f"{prefix}:sub": decision_subject("*", role_arn)}}
    condition: dict[str, Any] = {"StringEquals": {f"{prefix}:aud": audience}}
    for operator, keys in subject.items():
        condition.setdefault(operator, {}).update(keys)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeWithStsvendIssuedTokens",
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn(role_arn, issuer)},
                "Action": list(WEB_IDENTITY_ACTIONS),
                "Condition": condition,
            }
        ],
    }


def web_identity_template(
    role_arn: str, issuer: str, audience: str, grants: list[str] | None = None
) -> dict[str, Any]:
    """A CloudFormation template for the target account: the IAM OIDC provider for the service's
    issuer (unless the account has one: pass its ARN as `ProviderArn`) and the role, trusting it
    as `web_identity_trust_policy` says, with IAM's longest session. The role's permissions are
    the account's to attach."""
    policy = web_identity_trust_policy(role_arn, issuer, audience, grants)
    policy["Statement"][0]["Principal"]["Federated"] = {
        "Fn::If": ["CreateProvider", {"Ref": "StsvendIssuer"}, {"Ref": "ProviderArn"}]
    }
    path, _, name = role_arn.split(":", 5)[5].removeprefix("role").rpartition("/")
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "stsvend identity-provider mode: the issuer's IAM OIDC provider and a role that"
        " trusts its tokens (stsvend trust-policy --web-identity --format cloudformation)",
        "Parameters": {
            "ProviderArn": {
                "Type": "String",
                "Default": "",
                "Description": "The account's IAM OIDC provider for the issuer, if it has one already",
            }
        },
        "Conditions": {"CreateProvider": {"Fn::Equals": [{"Ref": "ProviderArn"}, ""]}},
        "Resources": {
            "StsvendIssuer": {
                "Type": "AWS::IAM::OIDCProvider",
                "Condition": "CreateProvider",
                "Properties": {"Url": issuer, "ClientIdList": [audience]},
            },
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": name,
                    "Path": f"{path}/",
                    "MaxSessionDuration": 43200,
                    "AssumeRolePolicyDocument": policy,
                },
            },
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}},
    }
