"""What `grants plan` asks a reviewer to look at twice: grants that are valid but wide."""

from __future__ import annotations

from collections.abc import Sequence

from stsvend.checkout.model import Entry, Grant


def _kind_and_name(principal: str) -> tuple[str, str]:
    resource = principal.split(":", 5)[5]
    kind, _, name = resource.partition("/")
    return kind, name


def grant_warnings(grants: Sequence[Entry]) -> list[str]:
    """One line per wide grant, naming it: a pattern that matches every user or every role of its
    account (a name of only `*`), and each granted role that gets no session policy at all (neither
    `session_policy` nor `policy_arns`), so that its sessions have all of the role's permissions."""
    lines: list[str] = []
    for grant in grants:
        if not isinstance(grant, Grant):
            lines += _oidc_warnings(grant)
            continue
        kind, name = _kind_and_name(grant.principal)
        if name and set(name) == {"*"}:
            lines.append(
                f"grant {grant.principal}: matches every {kind} of account {grant.account_id}"
                " (account-wide pattern)"
            )
        for role in grant.roles:
            if role.session_policy is None and not role.policy_arns:
                lines.append(
                    f"grant {grant.principal}: role {role.role_arn} has no session policy: its"
                    " sessions get all of the role's permissions"
                )
    return lines


def _oidc_warnings(entry: Entry) -> list[str]:
    """An OIDC grant keyed on names alone, or admitting pull-request contexts."""
    lines: list[str] = []
    if getattr(entry, "names_only", False):
        lines.append(f"oidc grant {entry.principal}: keyed on names alone, which can be re-registered")
    if getattr(entry, "pull_requests", False):
        lines.append(f"oidc grant {entry.principal}: admits pull-request runs (code not yet reviewed)")
    return lines
