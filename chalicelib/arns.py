"""IAM and STS ARNs: parsing callers' ARNs and checking the ARNs that grants and requests name.

ASCII only, spelled out: `\\d` and `\\w` would also accept other scripts' digits and letters
(full-width "１１１…"), which IAM never issues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARTITION = r"aws(?:-cn|-us-gov)?"
# IAM names: letters, digits and +=,.@_- (64 characters for roles, 64 for users).
NAME_CHARS = r"[A-Za-z0-9+=,.@_-]"

_ASSUMED_ROLE = re.compile(
    rf"^arn:({_PARTITION}):sts::([0-9]{{12}}):assumed-role/({NAME_CHARS}{{1,64}})/({NAME_CHARS}{{2,64}})$"
)
_IAM_USER = re.compile(
    rf"^arn:({_PARTITION}):iam::([0-9]{{12}}):user((?:/[\x21-\x7e]*?)?)/({NAME_CHARS}{{1,64}})$"
)
_IAM_ROLE = re.compile(
    rf"^arn:({_PARTITION}):iam::([0-9]{{12}}):role((?:/[\x21-\x7e]*?)?)/({NAME_CHARS}{{1,64}})$"
)
_ROOT = re.compile(rf"^arn:({_PARTITION}):iam::([0-9]{{12}}):root$")
_FEDERATED = re.compile(rf"^arn:({_PARTITION}):sts::([0-9]{{12}}):federated-user/({NAME_CHARS}{{2,32}})$")

# A role ARN a caller may request and a grant may list: no wildcard, optional path.
ROLE_ARN = re.compile(
    rf"^arn:({_PARTITION}):iam::([0-9]{{12}}):role(?:/[A-Za-z0-9+=,.@_-]+)*/({NAME_CHARS}{{1,64}})$"
)
# A grant's principal: exact role/user ARN (no path), or `*` wildcards in the name part only.
GRANT_PRINCIPAL = re.compile(
    rf"^arn:({_PARTITION}):iam::([0-9]{{12}}):(role|user)/([A-Za-z0-9+=,.@_*-]{{1,64}})$"
)


@dataclass(frozen=True)
class PrincipalArn:
    """A caller's ARN reduced to what grants match on: the principal's ARN, account and name."""

    arn: str
    principal_arn: str
    account_id: str
    name: str
    session_name: str | None = None


def parse_caller_arn(arn: str) -> PrincipalArn | None:
    """Normalize an authenticated caller ARN; None when it is not a principal stsvend knows.

    Assumed-role ARNs carry no role path, so users lose theirs too: grants match account + name.
    """
    if m := _ASSUMED_ROLE.fullmatch(arn):
        part, account, role, session = m.groups()
        return PrincipalArn(arn, f"arn:{part}:iam::{account}:role/{role}", account, role, session)
    if m := _IAM_USER.fullmatch(arn):
        part, account, _path, name = m.groups()
        return PrincipalArn(arn, f"arn:{part}:iam::{account}:user/{name}", account, name)
    if m := _IAM_ROLE.fullmatch(arn):
        # Only seen for a role authenticating directly (never via SigV4), kept for completeness.
        part, account, _path, name = m.groups()
        return PrincipalArn(arn, f"arn:{part}:iam::{account}:role/{name}", account, name)
    if m := _ROOT.fullmatch(arn):
        return PrincipalArn(arn, arn, m.group(2), "root")
    if m := _FEDERATED.fullmatch(arn):
        _part, account, name = m.groups()
        return PrincipalArn(arn, arn, account, name)
    return None
