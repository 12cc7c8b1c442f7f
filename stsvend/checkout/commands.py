"""The checkout commands: `grants plan|apply|list`, `bootstrap`, `trust-policy` (docs/design.md section 6).

They run from an stsvend checkout (`stsvend.checkout.checkout`) with the ambient AWS credentials;
`AWS_ENDPOINT_URL` points them at the local emulator.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stsvend import aws
from stsvend.checkout.apply import ApplyResult, apply_changes
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.grants_file import load_grants_file
from stsvend.checkout.model import BrokenGrant, GrantError, Issuer, grant_from_item
from stsvend.checkout.plan import ABSENT, GrantChange, GrantPlan, plan_changes
from stsvend.checkout.review import grant_warnings
from stsvend.checkout.table import create_table, scan_items
from stsvend.checkout.trust_policy import (
    ROLE_NAME,
    merge_trust_policy,
    policy_diff,
    read_policy_file,
    read_template,
    render_trust_policy,
    trusts,
)
from stsvend.constants import TIMESTAMP_FORMAT
from stsvend.errors import EXIT_USAGE, CommandError
from stsvend.terminal import identifier as printable

_SHOWN_CHARS = 100


# --- grants ------------------------------------------------------------------------------------


def cmd_grants(args: argparse.Namespace) -> int:
    checkout = Checkout.open(args.root)
    with aws.errors():
        return _grants(checkout, args)


def _grants(checkout: Checkout, args: argparse.Namespace) -> int:
    table = args.table or checkout.grants_table(args.stage)
    session = aws.session()
    dynamodb = session.create_client("dynamodb")
    if args.action == "list":
        return _list(dynamodb, table, args.stage)

    path = Path(args.file) if args.file else checkout.grants_file(args.stage)
    try:
        grants = load_grants_file(path, checkout.session_dir)
    except GrantError as exc:
        raise CommandError("InvalidGrantsFile", str(exc)) from None
    with _reading(table, args.stage):
        plan = plan_changes(dynamodb, table, grants)
    print(f"Grants file {path} ({len(grants)} grants) against table {table}:")
    print(format_plan(plan))
    warnings = grant_warnings(grants)
    if warnings:
        print("Warnings (valid, but wide: look twice):")
        print("\n".join(f"  ! {line}" for line in warnings))
    granted_roles = sorted({r.role_arn for g in grants if not isinstance(g, Issuer) for r in g.roles})
    trust = trust_warnings(checkout, args.stage, granted_roles)
    if trust:
        print("Trust (a granted role that does not trust the service answers 502 AssumeRoleDenied):")
        print("\n".join(f"  ! {line}" for line in trust))
    if args.action == "plan" or plan.empty:
        return 0

    updated_by = session.create_client("sts").get_caller_identity()["Arn"]
    result = apply_changes(dynamodb, table, plan, updated_by=updated_by)
    if result.ok:
        steps = "" if result.transactions <= 1 else (
            f" in {result.transactions} transactions (every touched grant disabled first)"
        )
        print(f"Applied: {plan.summary()}{steps}.")
        return 0
    print(format_apply_failure(result))
    raise CommandError("ApplyFailed", f"apply failed: {result.error}")


def trust_warnings(checkout: Checkout, stage: str, role_arns: list[str]) -> list[str]:
    """Which granted roles do not (yet) trust the stage's service role, where that can be seen: the
    roles in the account of the ambient credentials (the stsvend account), read with GetRole. A role
    in another account is named as not checked: its trust policy is readable only from there."""
    from botocore.exceptions import ClientError

    from stsvend.checkout.names import chalice_names

    if stage == "local":  # the local stack's service role is its own (stsvend local up sets the trust)
        return []
    session = aws.session()
    identity = session.create_client("sts").get_caller_identity()
    partition, account = identity["Arn"].split(":")[1], identity["Account"]
    _, role_name = chalice_names(str(checkout.config.get("app_name", "stsvend")), stage)
    service = f"arn:{partition}:iam::{account}:role/{role_name}"
    iam = session.create_client("iam")
    lines, elsewhere = [], 0
    for arn in role_arns:
        if arn.split(":")[4] != account:
            elsewhere += 1
            continue
        try:
            document = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
        except ClientError as exc:
            code = aws.error_code(exc)
            why = "does not exist" if code == "NoSuchEntity" else f"not checked (GetRole: {code})"
            lines.append(printable(f"{arn}: {why}"))
            continue
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        if not trusts(document, service):
            lines.append(printable(
                f"{arn}: does not trust {service}; merge stsvend's statements with"
                f" stsvend trust-policy --service-role {service} --role-name {arn.rsplit('/', 1)[1]}"
            ))
    if elsewhere:
        lines.append(
            f"{elsewhere} granted role(s) in other accounts not checked (their trust policies are readable"
            " there: stsvend trust-policy --role-name NAME, or the target-account template)"
        )
    return lines


@contextmanager
def _reading(table: str, stage: str) -> Iterator[None]:
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise CommandError(
                "NoSuchTable",
                f"table {table} does not exist; create it with: stsvend bootstrap --stage {stage}"
            ) from None
        raise


def _show(value: Any) -> str:
    """A value from the table or the file, as JSON (non-ASCII escaped), shortened."""
    if value is ABSENT:
        return "(absent)"
    text = printable(json.dumps(value, sort_keys=True, default=repr))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _roles(item: dict[str, Any] | None) -> str:
    roles = (item or {}).get("roles") or []
    arns = ", ".join(str(r.get("role_arn")) for r in roles if isinstance(r, dict))
    return printable(arns) or "-"


def format_plan(plan: GrantPlan) -> str:
    if plan.empty:
        return "No changes."
    lines: list[str] = []
    for change in plan.added:
        lines += [f"+ {printable(change.principal)}", f"    roles: {_roles(change.item)}"]
    for change in plan.changed:
        lines.append(f"~ {printable(change.principal)}")
        lines += [
            f"    {printable(f.path)}: {_show(f.old)} -> {_show(f.new)}" for f in change.fields
        ]
    lines += [f"- {printable(change.principal)}" for change in plan.removed]
    lines.append(f"Plan: {plan.summary()}.")
    return "\n".join(lines)


_SIGNS = {"add": "+", "change": "~", "remove": "-"}


def _listed(changes: tuple[GrantChange, ...]) -> list[str]:
    return [f"  {_SIGNS[c.kind]} {printable(c.principal)}" for c in changes] or ["  (none)"]


def format_apply_failure(result: ApplyResult) -> str:
    lines = ["Applied before the failure:", *_listed(result.applied)]
    if result.unknown:
        lines += ["Outcome unknown (check with plan):", *_listed(result.unknown)]
    lines += ["Not applied:", *_listed(result.not_applied)]
    if result.disabled:
        lines += ["Left disabled, denying until apply runs again:", *_listed(result.disabled)]
    return "\n".join(lines)


def _list(dynamodb: Any, table: str, stage: str) -> int:
    with _reading(table, stage):
        items = scan_items(dynamodb, table)
    # The oidc partition (issuers and OIDC grants) is listed by its principals.
    oidc = sorted(str(i["principal"].get("S")) for i in items if i.get("account_id", {}).get("S") == "oidc")
    items = [i for i in items if i.get("account_id", {}).get("S") != "oidc"]
    grants = sorted((grant_from_item(item) for item in items), key=lambda g: g.principal)
    if not grants and not oidc:
        print(f"No grants in table {table}.")
        return 0
    rows = [("PRINCIPAL", "ENABLED", "NOT_AFTER", "ROLES")]
    for grant in grants:
        principal = printable(grant.principal)
        if isinstance(grant, BrokenGrant):
            rows.append((principal, "BROKEN", "-", printable(grant.problem)))
            continue
        not_after = grant.not_after.strftime(TIMESTAMP_FORMAT) if grant.not_after else "-"
        arns = [printable(r.role_arn) for r in grant.roles]
        rows.append((principal, "yes" if grant.enabled else "no", not_after, arns[0]))
        rows += [("", "", "", arn) for arn in arns[1:]]
    rows += [(printable(principal), "-", "-", "(oidc: see the grants file)") for principal in oidc]
    w0, w1, w2 = (max(len(row[i]) for row in rows) for i in range(3))
    for principal, enabled, not_after, role in rows:
        print(f"{principal:<{w0}}  {enabled:<{w1}}  {not_after:<{w2}}  {role}")
    return 0


# --- bootstrap ---------------------------------------------------------------------------------


def cmd_bootstrap(args: argparse.Namespace) -> int:
    checkout = Checkout.open(args.root)
    table = args.table or checkout.grants_table(args.stage)
    with aws.errors():
        created = create_table(aws.session().create_client("dynamodb"), table)
    if created:
        print(f"Created table {table} (on-demand, encrypted, deletion protection on).")
    else:
        print(f"Table {table} already exists.")
    print(f"Point-in-time recovery is on for {table}.")
    if args.stage != "local":  # the local stack's service role is its own
        from stsvend.checkout.names import chalice_names

        _, role = chalice_names(str(checkout.config.get("app_name", "stsvend")), args.stage)
        print(f"The stage's service role, which target roles trust: {printable(role)} (stsvend deploy-info).")
    return 0


# --- trust-policy ------------------------------------------------------------------------------


def cmd_trust_policy(args: argparse.Namespace) -> int:
    checkout = Checkout.open(args.root)
    if getattr(args, "web_identity", False):
        return _web_identity_trust(args)
    if args.service_role is None:
        raise CommandError("InvalidArgument", "--service-role is required (or --web-identity)", EXIT_USAGE)
    template = read_template(checkout)
    ours = render_trust_policy(template, args.service_role, args.external_id, args.allowed_caller)
    if args.merge is not None and args.role_name is not None:
        raise CommandError("InvalidArgument", "--merge and --role-name exclude each other", EXIT_USAGE)
    if args.apply and args.role_name is None:
        raise CommandError("InvalidArgument", "--apply needs --role-name", EXIT_USAGE)
    if args.merge is not None:
        current = read_policy_file(Path(args.merge))
        merged = merge_trust_policy(current, ours, args.merge)
        diff = policy_diff(current, merged, Path(args.merge).name)
        print(diff or f"No changes: {args.merge} already holds stsvend's statements.", file=sys.stderr)
        print(json.dumps(merged, indent=2))
        return 0
    if args.role_name is not None:
        with aws.errors():
            return _trust_role(args.role_name, ours, args.apply)
    print(json.dumps(ours, indent=2))
    return 0


def _trust_role(role_name: str, ours: dict[str, Any], apply: bool) -> int:
    """Merge stsvend's statements into a role's trust policy in the ambient account: the diff, then,
    with `apply`, UpdateAssumeRolePolicy (only when something differs)."""
    if not ROLE_NAME.fullmatch(role_name):
        raise CommandError("InvalidArgument", f"--role-name must be an IAM role name, not {role_name!r}",
                           EXIT_USAGE)
    iam = aws.session().create_client("iam")
    role = iam.get_role(RoleName=role_name)["Role"]
    current = role["AssumeRolePolicyDocument"]
    if isinstance(current, str):  # IAM's API gives it URL-encoded; botocore decodes it
        current = json.loads(urllib.parse.unquote(current))
    merged = merge_trust_policy(current, ours, f"role {role_name}")
    diff = policy_diff(current, merged, f"role {role_name}")
    if not diff:
        print(f"No changes: role {role_name} already trusts the service with stsvend's statements.")
        return 0
    print(diff)
    if not apply:
        print("Dry run: nothing written; add --apply to write the merged trust policy.")
        return 0
    iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(merged))
    print(f"Updated the trust policy of {printable(role['Arn'])}.")
    return 0


def _web_identity_trust(args: argparse.Namespace) -> int:
    from stsvend.checkout.trust_policy import web_identity_template, web_identity_trust_policy

    if args.issuer is None or args.role is None:
        raise CommandError("InvalidArgument", "--web-identity needs --issuer and --role", EXIT_USAGE)
    if args.service_role is not None or args.external_id is not None or args.allowed_caller:
        raise CommandError(
            "InvalidArgument",
            "--service-role, --external-id and --allowed-caller are for assume-role mode: a web identity"
            " token has its sub",
            EXIT_USAGE,
        )
    render = web_identity_template if args.format == "cloudformation" else web_identity_trust_policy
    print(json.dumps(render(args.role, args.issuer, args.audience, args.grant), indent=2))
    return 0
