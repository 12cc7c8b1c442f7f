"""The admin commands: `grants plan|apply|list`, `bootstrap`, `trust-policy` (DESIGN.md section 6).

They run from an stsvend checkout (see `stsvend.grantsfile`) with the ambient AWS credentials;
`AWS_ENDPOINT_URL` points them at the local emulator.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stsvend.grantsfile import (
    ABSENT,
    AdminError,
    ApplyResult,
    Checkout,
    GrantChange,
    GrantPlan,
    apply_changes,
    create_table,
    load_grants_file,
    open_checkout,
    plan_changes,
    scan_items,
)

# The Python API the local stack uses, next to the commands.
__all__ = [
    "AdminError", "ApplyResult", "Checkout", "GrantPlan", "apply_changes", "cmd_bootstrap",
    "cmd_grants", "cmd_trust_policy", "create_table", "load_grants_file", "open_checkout",
    "plan_changes", "render_trust_policy",
]

SERVICE_ROLE_PLACEHOLDER = "${STSVEND_SERVICE_ROLE_ARN}"
EXTERNAL_ID_PLACEHOLDER = "${EXTERNAL_ID}"
_SHOWN_CHARS = 100


def _fail(message: str) -> int:
    print(f"stsvend: error: {message}", file=sys.stderr)
    return 1


def _run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return command(args)
    except AdminError as exc:
        return _fail(str(exc))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
        return _fail(f"AWS refused {exc.operation_name}: {code}: {message}")
    except BotoCoreError as exc:
        return _fail(f"AWS could not be reached: {exc}")


def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


# --- grants ------------------------------------------------------------------------------------


def cmd_grants(args: argparse.Namespace) -> int:
    return _run(_grants, args)


def _grants(args: argparse.Namespace) -> int:
    checkout = open_checkout(args.root)
    table = args.table or checkout.grants_table(args.stage)
    dynamodb = _session().create_client("dynamodb")
    if args.action == "list":
        return _list(dynamodb, table, args.stage)

    from chalicelib.grants import GrantError

    path = Path(args.file) if args.file else checkout.grants_file(args.stage)
    try:
        grants = load_grants_file(path, checkout.session_dir)
    except GrantError as exc:
        raise AdminError(str(exc)) from None
    with _reading(table, args.stage):
        plan = plan_changes(dynamodb, table, grants)
    print(f"Grants file {path} ({len(grants)} grants) against table {table}:")
    print(format_plan(plan))
    if args.action == "plan" or plan.empty:
        return 0

    updated_by = _session().create_client("sts").get_caller_identity()["Arn"]
    result = apply_changes(dynamodb, table, plan, updated_by=updated_by)
    if result.ok:
        print(f"Applied: {plan.summary()}.")
        return 0
    print(format_apply_failure(result))
    return _fail(f"apply failed: {result.error}")


@contextmanager
def _reading(table: str, stage: str) -> Iterator[None]:
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise AdminError(
                f"table {table} does not exist; create it with: stsvend bootstrap --stage {stage}"
            ) from None
        raise


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _roles(item: dict[str, Any] | None) -> str:
    roles = (item or {}).get("roles") or []
    return ", ".join(str(r.get("role_arn")) for r in roles if isinstance(r, dict)) or "-"


def format_plan(plan: GrantPlan) -> str:
    if plan.empty:
        return "No changes."
    lines: list[str] = []
    for change in plan.added:
        lines += [f"+ {change.principal}", f"    roles: {_roles(change.item)}"]
    for change in plan.changed:
        lines.append(f"~ {change.principal}")
        lines += [f"    {f.path}: {_show(f.old)} -> {_show(f.new)}" for f in change.fields]
    lines += [f"- {change.principal}" for change in plan.removed]
    lines.append(f"Plan: {plan.summary()}.")
    return "\n".join(lines)


_SIGNS = {"add": "+", "change": "~", "remove": "-"}


def _listed(changes: tuple[GrantChange, ...]) -> list[str]:
    return [f"  {_SIGNS[c.kind]} {c.principal}" for c in changes] or ["  (none)"]


def format_apply_failure(result: ApplyResult) -> str:
    lines = ["Applied before the failure:", *_listed(result.applied)]
    if result.unknown:
        lines += ["Outcome unknown (check with plan):", *_listed(result.unknown)]
    lines += ["Not applied:", *_listed(result.not_applied)]
    return "\n".join(lines)


def _list(dynamodb: Any, table: str, stage: str) -> int:
    from chalicelib.grant_store import grant_from_item
    from chalicelib.grants import BrokenGrant

    with _reading(table, stage):
        items = scan_items(dynamodb, table)
    grants = sorted((grant_from_item(item) for item in items), key=lambda g: g.principal)
    if not grants:
        print(f"No grants in table {table}.")
        return 0
    rows = [("PRINCIPAL", "ENABLED", "NOT_AFTER", "ROLES")]
    for grant in grants:
        if isinstance(grant, BrokenGrant):
            rows.append((grant.principal, "BROKEN", "-", grant.problem))
            continue
        not_after = grant.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if grant.not_after else "-"
        arns = [r.role_arn for r in grant.roles]
        rows.append((grant.principal, "yes" if grant.enabled else "no", not_after, arns[0]))
        rows += [("", "", "", arn) for arn in arns[1:]]
    w0, w1, w2 = (max(len(row[i]) for row in rows) for i in range(3))
    for principal, enabled, not_after, role in rows:
        print(f"{principal:<{w0}}  {enabled:<{w1}}  {not_after:<{w2}}  {role}")
    return 0


# --- bootstrap ---------------------------------------------------------------------------------


def cmd_bootstrap(args: argparse.Namespace) -> int:
    return _run(_bootstrap, args)


def _bootstrap(args: argparse.Namespace) -> int:
    checkout = open_checkout(args.root)
    table = args.table or checkout.grants_table(args.stage)
    if create_table(_session().create_client("dynamodb"), table):
        print(f"Created table {table} (on-demand, encrypted, deletion protection on).")
    else:
        print(f"Table {table} already exists.")
    print(f"Point-in-time recovery is on for {table}.")
    return 0


# --- trust-policy ------------------------------------------------------------------------------


def cmd_trust_policy(args: argparse.Namespace) -> int:
    return _run(_trust_policy, args)


def _trust_policy(args: argparse.Namespace) -> int:
    checkout: Checkout = open_checkout(getattr(args, "root", None))
    try:
        template = json.loads(checkout.trust_template.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdminError(f"the trust policy template cannot be read: {exc}") from None
    policy = render_trust_policy(template, args.service_role, args.external_id)
    print(json.dumps(policy, indent=2))
    return 0


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


def render_trust_policy(
    template: dict[str, Any], service_role_arn: str, external_id: str | None
) -> dict[str, Any]:
    """The target role's trust policy: the template with stsvend's role filled in, and the external
    id condition filled in or, without one, removed."""
    from chalicelib.arns import ROLE_ARN
    from chalicelib.grants import EXTERNAL_ID, EXTERNAL_ID_CHARS

    if not ROLE_ARN.fullmatch(service_role_arn):
        raise AdminError(f"--service-role must be an IAM role ARN, not {service_role_arn!r}")
    if external_id is not None and not EXTERNAL_ID.fullmatch(external_id):
        raise AdminError(f"--external-id must be 2-1224 characters of [{EXTERNAL_ID_CHARS}]")
    policy = copy.deepcopy(template)
    if external_id is None:
        _drop_external_id(policy)
    replacements = {SERVICE_ROLE_PLACEHOLDER: service_role_arn}
    if external_id is not None:
        replacements[EXTERNAL_ID_PLACEHOLDER] = external_id
    rendered: dict[str, Any] = _substitute(policy, replacements)
    if "${" in json.dumps(rendered):
        raise AdminError("the trust policy template has a placeholder stsvend does not fill")
    return rendered
