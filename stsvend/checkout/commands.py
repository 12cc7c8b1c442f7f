"""The checkout commands: `grants plan|apply|list`, `bootstrap`, `trust-policy` (DESIGN.md section 6).

They run from an stsvend checkout (`stsvend.checkout.checkout`) with the ambient AWS credentials;
`AWS_ENDPOINT_URL` points them at the local emulator.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stsvend import TIMESTAMP_FORMAT
from stsvend.checkout.apply import ApplyResult, apply_changes
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.display import printable
from stsvend.checkout.grants_file import load_grants_file
from stsvend.checkout.model import BrokenGrant, GrantError, grant_from_item
from stsvend.checkout.plan import ABSENT, GrantChange, GrantPlan, plan_changes
from stsvend.checkout.review import grant_warnings
from stsvend.checkout.table import create_table, scan_items
from stsvend.checkout.trust_policy import read_template, render_trust_policy
from stsvend.errors import CommandError

_SHOWN_CHARS = 100


@contextmanager
def _aws_errors() -> Iterator[None]:
    """AWS's refusals and unreachability as the command's one error type."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
        raise CommandError("AwsRefused", f"AWS refused {exc.operation_name}: {code}: {message}") from None
    except BotoCoreError as exc:
        raise CommandError("AwsUnreachable", f"AWS could not be reached: {exc}") from None


def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


# --- grants ------------------------------------------------------------------------------------


def cmd_grants(args: argparse.Namespace) -> int:
    checkout = Checkout.open(args.root)
    with _aws_errors():
        return _grants(checkout, args)


def _grants(checkout: Checkout, args: argparse.Namespace) -> int:
    table = args.table or checkout.grants_table(args.stage)
    dynamodb = _session().create_client("dynamodb")
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
    if args.action == "plan" or plan.empty:
        return 0

    updated_by = _session().create_client("sts").get_caller_identity()["Arn"]
    result = apply_changes(dynamodb, table, plan, updated_by=updated_by)
    if result.ok:
        steps = "" if result.transactions <= 1 else (
            f" in {result.transactions} transactions (every touched grant disabled first)"
        )
        print(f"Applied: {plan.summary()}{steps}.")
        return 0
    print(format_apply_failure(result))
    raise CommandError("ApplyFailed", f"apply failed: {result.error}")


@contextmanager
def _reading(table: str, stage: str) -> Iterator[None]:
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
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
    with _aws_errors():
        created = create_table(_session().create_client("dynamodb"), table)
    if created:
        print(f"Created table {table} (on-demand, encrypted, deletion protection on).")
    else:
        print(f"Table {table} already exists.")
    print(f"Point-in-time recovery is on for {table}.")
    return 0


# --- trust-policy ------------------------------------------------------------------------------


def cmd_trust_policy(args: argparse.Namespace) -> int:
    template = read_template(Checkout.open(args.root))
    print(json.dumps(render_trust_policy(template, args.service_role, args.external_id), indent=2))
    return 0
