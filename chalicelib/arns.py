"""IAM and STS identifiers: the one definition of each (partition, account id, IAM name, role and
principal ARNs, ...) and the grants' principal matching, for the server and the command alike.

The command's package reaches this file as `stsvend/arns.py`, a link to it: an installed `stsvend`
has no `chalicelib`, and the deployed function has no `stsvend`, so the one file is in both (the
wheel carries its content). Only the standard library, and nothing else of either side, is imported
here. tests/unit/test_identifiers.py holds that no other module defines a pattern for these.

ASCII only, spelled out: `\\d` and `\\w` would also accept other scripts' digits and letters
(full-width "１１１…"), which IAM never issues. Each compiled pattern is anchored (`^...$`, the form
the OpenAPI document publishes) and read with `fullmatch`, so a trailing newline never passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The partitions stsvend serves: commercial, China, GovCloud (US).
PARTITION = r"aws(?:-cn|-us-gov)?"
ACCOUNT_ID = r"[0-9]{12}"
# IAM names (users, roles), role session names and source identities: letters, digits and +=,.@_-.
NAME_CHAR_SET = "A-Za-z0-9+=,.@_-"
NAME_CHARS = f"[{NAME_CHAR_SET}]"
NAME = rf"{NAME_CHARS}{{1,64}}"
SESSION_NAME = rf"{NAME_CHARS}{{2,64}}"
# A role's path as a caller or a grant may write it; IAM reports callers' paths as any printable ASCII.
_PATH = rf"(?:/{NAME_CHARS}+)*"
_CALLER_PATH = r"(?:/[\x21-\x7e]*?)?"

ACCOUNT = re.compile(rf"^{ACCOUNT_ID}$")

_ASSUMED_ROLE = re.compile(
    rf"^arn:({PARTITION}):sts::({ACCOUNT_ID}):assumed-role/({NAME})/({SESSION_NAME})$"
)
_IAM_USER = re.compile(rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):user({_CALLER_PATH})/({NAME})$")
_IAM_ROLE = re.compile(rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):role({_CALLER_PATH})/({NAME})$")
_ROOT = re.compile(rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):root$")
_FEDERATED = re.compile(rf"^arn:({PARTITION}):sts::({ACCOUNT_ID}):federated-user/({NAME_CHARS}{{2,32}})$")

# A role ARN a caller may request and a grant may list: no wildcard, optional path.
# Groups: partition, account, name.
ROLE_ARN = re.compile(rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):role{_PATH}/({NAME})$")
# A principal as grants match it and stsvend tags its sessions (`stsvend:caller`): a role or user,
# no path. Groups: partition, account, role|user, name.
PRINCIPAL_ARN = re.compile(rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):(role|user)/({NAME})$")
# A grant's principal: exact role/user ARN (no path), or `*` wildcards in the name part only.
GRANT_PRINCIPAL = re.compile(
    rf"^arn:({PARTITION}):iam::({ACCOUNT_ID}):(role|user)/([*{NAME_CHAR_SET}]{{1,64}})$"
)
# A managed policy a grant may attach to a session: AWS's own or one of an account.
POLICY_ARN = re.compile(rf"^arn:{PARTITION}:iam::(?:aws|{ACCOUNT_ID}):policy/[\x21-\x7e]{{1,1024}}$")
# An SNS topic (`stsvend monitor --alarm-topic`); the text is also CloudFormation's AllowedPattern.
SNS_TOPIC = rf"arn:{PARTITION}:sns:[a-z0-9-]+:{ACCOUNT_ID}:[A-Za-z0-9_-]{{1,256}}(?:\.fifo)?"
SNS_TOPIC_ARN = re.compile(rf"^{SNS_TOPIC}$")
# A KMS key of the identity-provider mode's issuer (STSVEND_ISSUER_KEYS).
KMS_KEY = (
    rf"arn:{PARTITION}:kms:[a-z0-9-]{{1,32}}:{ACCOUNT_ID}:key/(?:mrk-)?[0-9a-f]{{8}}(?:-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}"
)
# A regional WAFv2 web ACL (`stsvend deploy --web-acl`); the text is also CloudFormation's AllowedPattern.
WEB_ACL = (
    rf"arn:{PARTITION}:wafv2:[a-z0-9-]+:{ACCOUNT_ID}:regional/webacl/[A-Za-z0-9_-]{{1,128}}/[0-9a-f-]{{36}}"
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


def principal_matches(principal: str, principal_arn: str) -> bool:
    """Whether a grant's principal (exact, or with `*` in the name part) names this caller.

    IAM names are unique regardless of case, so matching ignores case; ASCII case only (the
    identifiers are ASCII, and Unicode lower-casing would let a lookalike such as KELVIN SIGN stand
    for K). `*` matches any run of name characters; the matcher is linear (pieces found in order),
    so no pattern can make it backtrack.
    """
    if not (principal.isascii() and principal_arn.isascii()):
        return False
    principal, principal_arn = principal.lower(), principal_arn.lower()
    if "*" not in principal:
        return principal == principal_arn
    prefix, _, name_pattern = principal.rpartition("/")
    caller_prefix, _, name = principal_arn.rpartition("/")
    if prefix != caller_prefix or "*" in prefix:
        return False
    first, *middle, last = name_pattern.split("*")
    if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
        return False
    position, end = len(first), len(name) - len(last)
    for piece in middle:
        found = name.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True
