"""`stsvend revoke --role ARN (--request-id ID | --access-key-id KEY | --caller ARN | --all-before-now)
[--apply]`: cut off sessions stsvend already vended for a role, for incident response.

Each revocation is one inline policy on the target role, `stsvend-revoked-sessions.<kind><time>.<digest>`:
a Deny-everything statement for sessions issued before that time (`aws:TokenIssueTime`) and carrying
the request id or caller stsvend stamped on them (`aws:PrincipalTag/...`). A session stsvend vends
lasts at most the role's maximum session duration (an hour by role chaining; up to 12 in
web-identity mode), so an entry older than that (plus a margin for clock skew) can deny nothing any
more and is pruned: the role's policies stay small.

Runs at once never lose each other's revocations. IAM has no conditional write (PutRolePolicy takes
no expected document or version; CreatePolicyVersion of a managed policy takes no base version
either), so instead of a read-modify-write of one shared policy, no run rewrites a policy another
run wrote. A policy's name is its content's (the same revocation, the same name
and document), a run only adds its own policy and deletes policies whose every entry has expired or
is covered by a later one that is in force, and it reports a revocation only once it has read it
back in force. A policy named `stsvend-revoked-sessions` alone (earlier versions kept every entry
there) is read, and deleted once nothing in it can deny anything, never rewritten.

Revoking does not stop new vends: for a caller, it prints the grants change that does."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from stsvend.aws import error_code, unless_refused
from stsvend.constants import TIMESTAMP_FORMAT
from stsvend.errors import CommandError
from stsvend.ops import common
from stsvend.terminal import identifier

POLICY_NAME = "stsvend-revoked-sessions"
# Sessions STS issued up to this long after a revocation time could carry an earlier clock reading.
CLOCK_MARGIN_SECONDS = 300
PRUNE_AFTER = timedelta(seconds=common.LONGEST_SESSION_SECONDS + CLOCK_MARGIN_SECONDS)
# IAM: a role's inline policies together, counted without white space.
MAX_INLINE_CHARS = 10_240
TAG_REQUEST_ID = "aws:PrincipalTag/stsvend:request-id"
TAG_CALLER = "aws:PrincipalTag/stsvend:caller"
ISSUED = "aws:TokenIssueTime"

REQUEST, CALLER, ALL = "Request", "Caller", "AllStsvendSessions"
_SID = re.compile(rf"StsvendRevoke({REQUEST}|{CALLER}|{ALL})([0-9]{{8}}T[0-9]{{6}}Z)")
_SID_TIME = "%Y%m%dT%H%M%SZ"
# One revocation's policy: kind, time and a digest of the value (`policy_name`).
_KIND_CODES = {REQUEST: "R", CALLER: "C", ALL: "A"}
_ENTRY_POLICY = re.compile(rf"{re.escape(POLICY_NAME)}\.[RCA][0-9]{{8}}T[0-9]{{6}}Z\.[0-9a-f]{{40}}")
# How long a run reads the role's policies back, waiting for its revocation to be in force. IAM is
# eventually consistent: a change may not be visible at once (IAM User Guide, "Troubleshoot general
# issues", "Changes that I make are not always immediately visible").
CONFIRM_SECONDS = 60.0


@dataclass(frozen=True, order=True)
class Entry:
    kind: str
    value: str  # the request id, the caller ARN, or "" for every stsvend session
    revoked_at: datetime

    def describe(self) -> str:
        what = {
            REQUEST: f"request {self.value}",
            CALLER: f"caller {self.value}",
            ALL: "every stsvend session",
        }[self.kind]
        return f"{what}, issued before {self.revoked_at.strftime(TIMESTAMP_FORMAT)}"


def not_ours(message: str) -> CommandError:
    """The role's policy of that name holds something stsvend did not write: left as it is."""
    return common.failure("PolicyNotOurs", message)


# --- the document ----------------------------------------------------------------------------------


def _statement(kind: str, revoked_at: datetime, values: list[str]) -> dict[str, Any]:
    condition: dict[str, Any] = {"DateLessThan": {ISSUED: revoked_at.strftime(TIMESTAMP_FORMAT)}}
    if kind == REQUEST:
        condition["StringEquals"] = {TAG_REQUEST_ID: values}
    elif kind == CALLER:
        # IAM matches principals regardless of case, and so do grants: so does the revocation.
        condition["StringEqualsIgnoreCase"] = {TAG_CALLER: values}
    else:
        # Only sessions stsvend vended (they carry its request id tag): those last at most an hour,
        # which is what makes pruning safe. The console's "Revoke active sessions" covers the rest.
        condition["Null"] = {TAG_REQUEST_ID: "false"}
    return {
        "Sid": f"StsvendRevoke{kind}{revoked_at.strftime(_SID_TIME)}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": condition,
    }


def document(entries: set[Entry]) -> dict[str, Any] | None:
    """The policy holding `entries`, grouped by kind and time; None when there are none."""
    groups: dict[tuple[str, datetime], list[str]] = {}
    for entry in sorted(entries):
        groups.setdefault((entry.kind, entry.revoked_at), []).append(entry.value)
    if not groups:
        return None
    statements = [
        _statement(kind, when, values)
        for (kind, when), values in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0]))
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def entries_of(policy: dict[str, Any], name: str = POLICY_NAME) -> set[Entry]:
    """The entries of a policy this command wrote; anything else is refused, not overwritten."""
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if not isinstance(statements, list):
        raise not_ours(f"the inline policy {name} has no statement list")
    entries: set[Entry] = set()
    for statement in statements:
        sid = statement.get("Sid", "") if isinstance(statement, dict) else ""
        match = _SID.fullmatch(str(sid))
        if not match:
            raise not_ours(f"the inline policy {name} holds a statement stsvend did not write (Sid {sid!r})")
        kind = match.group(1)
        try:
            when = datetime.strptime(match.group(2), _SID_TIME).replace(tzinfo=timezone.utc)
        except ValueError:
            raise not_ours(f"the statement {sid} of the inline policy {name} names no date") from None
        values = [""]
        if kind != ALL:
            operator, key = (
                ("StringEquals", TAG_REQUEST_ID)
                if kind == REQUEST
                else ("StringEqualsIgnoreCase", TAG_CALLER)
            )
            # Read as data of any shape: what is not the shape written is refused below.
            condition = statement.get("Condition")
            block = condition.get(operator) if isinstance(condition, dict) else None
            values = _as_list(block.get(key) if isinstance(block, dict) else None)
        if statement != _statement(kind, when, values) or not all(_valid(kind, v) for v in values):
            raise not_ours(f"the statement {sid} of the inline policy {name} was changed by hand")
        entries |= {Entry(kind, v, when) for v in values}
    return entries


def _valid(kind: str, value: Any) -> bool:
    if kind == ALL:
        return bool(value == "")
    pattern = common.REQUEST_ID if kind == REQUEST else common.PRINCIPAL_ARN
    return isinstance(value, str) and pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Merge:
    entries: set[Entry]
    added: list[Entry]
    kept: list[Entry]  # asked for, already there
    replaced: list[Entry]  # the same caller, or every session, revoked again: now at a later time
    pruned: list[Entry]  # can deny nothing any more

    @property
    def changed(self) -> bool:
        return bool(self.added or self.pruned)


def prune_after(max_session_seconds: int) -> timedelta:
    """How long an entry can still deny a session of a role with this maximum session duration."""
    longest = min(max(max_session_seconds, 3600), common.LONGEST_SESSION_SECONDS)
    return timedelta(seconds=longest + CLOCK_MARGIN_SECONDS)


def merge(
    current: set[Entry],
    kind: str,
    value: str,
    now: datetime,
    keep_for: timedelta = PRUNE_AFTER,
    earliest: datetime | None = None,
) -> Merge:
    """Add one revocation at `now`; prune what can no longer deny anything at `earliest` (the
    earliest of the clocks read: a clock ahead must not prune what still denies) once `keep_for`
    (the role's longest session) has passed, or what a later
    revocation of every session covers. Asking again for a request id changes nothing (one request
    id is one session, issued before the first revocation); asking again for a caller or for every
    session moves its time to `now`, which also covers the sessions issued since, and never earlier:
    a revocation already there at a later time (a run on a clock ahead wrote it) is kept."""
    revoked_at = _whole_second_after(now)
    earliest = now if earliest is None else min(now, earliest)
    entries = set(current)
    same = sorted(e for e in entries if e.kind == kind and _key(kind, e.value) == _key(kind, value))
    added: list[Entry] = []
    kept: list[Entry] = []
    replaced: list[Entry] = []
    if same and (kind == REQUEST or max(e.revoked_at for e in same) >= revoked_at):
        kept = same
    else:
        replaced = same
        entries -= set(same)
        added = [Entry(kind, value, revoked_at)]
        entries |= set(added)
    everything = max((e.revoked_at for e in entries if e.kind == ALL), default=None)
    pruned = sorted(
        e
        for e in entries
        if e.revoked_at < earliest - keep_for
        or (everything is not None and e.kind != ALL and e.revoked_at <= everything)
    )
    entries -= set(pruned)
    return Merge(entries, added, [e for e in kept if e in entries], replaced, pruned)


def _key(kind: str, value: str) -> str:
    """What tells two values of a kind apart, as IAM compares them: a request id exactly
    (StringEquals), a caller ignoring case (StringEqualsIgnoreCase)."""
    return value.lower() if kind == CALLER else value


def covered(entries: Iterable[Entry], wanted: Entry) -> bool:
    """Whether `entries` deny every session `wanted` denies: it, the same value at a later time, or
    every stsvend session at a time no earlier."""
    key = _key(wanted.kind, wanted.value)
    return any(
        e.revoked_at >= wanted.revoked_at
        and (e.kind == ALL or (e.kind == wanted.kind and _key(e.kind, e.value) == key))
        for e in entries
    )


def policy_name(entry: Entry) -> str:
    """The name of the inline policy that holds one revocation: the same revocation, the same name
    (and document), so two runs writing one name write the same thing."""
    digest = hashlib.sha256(f"{entry.kind}\n{_key(entry.kind, entry.value)}".encode()).hexdigest()[:40]
    return f"{POLICY_NAME}.{_KIND_CODES[entry.kind]}{entry.revoked_at.strftime(_SID_TIME)}.{digest}"


def _whole_second_after(now: datetime) -> datetime:
    """Rounded up: a session issued earlier in this second is before the revocation."""
    return datetime.fromtimestamp(math.ceil(now.timestamp()), tz=timezone.utc)


def shown(policy: dict[str, Any]) -> str:
    """The policy as JSON, one statement a line."""
    statements = ",\n    ".join(json.dumps(s) for s in policy["Statement"])
    return f'{{\n  "Version": "{policy["Version"]}",\n  "Statement": [\n    {statements}\n  ]\n}}'


def packed_size(policy: dict[str, Any]) -> int:
    return len(json.dumps(policy, separators=(",", ":")))


# --- grants ------------------------------------------------------------------------------------------


def grants_change(root: Path | None, caller: str) -> list[str]:
    """What to change in the grants files so that the caller gets no new credentials: each file read
    as `stsvend grants` reads it (strict JSON, every grant checked), and the grant that decides for
    the caller found as the service finds it (chalicelib/grants.py)."""
    files = sorted((root / "policies" / "grants").glob("*.json")) if root else []
    disabled = json.dumps({"principal": caller, "enabled": False, "description": "revoked", "roles": ["..."]})
    if root is None or not files:
        return [
            'To stop new vends: in your grants file set "enabled": false on the grant for this caller,',
            f"or add an exact grant that decides for it and is disabled: {disabled}",
            "(copy the roles of the grant that admits it); then: stsvend grants plan/apply --stage STAGE.",
        ]
    if "chalicelib.grants" not in sys.modules:
        from stsvend.checkout.checkout import Checkout

        Checkout.open(root)  # the grant model from this checkout, never from the current directory's
    from stsvend.checkout.grants_file import MAX_GRANTS_FILE_BYTES, load_grants_file, read_json_file
    from stsvend.checkout.model import Grant, GrantError, deciding_candidates

    lines = [f"To stop new vends for {caller} (revoking ends only the sessions it already has):"]
    now = datetime.now(timezone.utc)
    for path in files:
        where = f"policies/grants/{path.name}"
        try:
            grants = load_grants_file(path, root / "policies" / "session")
            entries = read_json_file(path, MAX_GRANTS_FILE_BYTES)
            # IAM grants only: the file's OIDC entries (issuers, OIDC grants) name no principal.
            raw = {g["principal"]: g for g in entries if isinstance(g, dict) and "principal" in g}
        except GrantError as exc:
            lines.append(f"  {where}: cannot be read ({exc}); fix it before it is applied")
            continue
        # IAM callers' grants only: OIDC issuers and grants never decide for an IAM principal.
        candidates = deciding_candidates([g for g in grants if isinstance(g, Grant)], caller)
        if not candidates:
            continue
        if len(candidates) > 1:
            names = ", ".join(g.principal for g in candidates)
            lines.append(
                f"  {where}: {names} match it equally (the service denies it: ambiguous); to keep it so"
                f" when one goes, add an exact grant, which decides before any pattern: {disabled}"
            )
        else:
            lines.append(f"  {where}: {_decided(candidates[0], caller, raw, now)}")
        stage = path.stem
        lines.append(f"    then: stsvend grants plan --stage {stage} && stsvend grants apply --stage {stage}")
    if len(lines) == 1:
        lines.append(f"  no grant in policies/grants/ admits {caller}: nothing to change")
    else:
        lines.append("  New vends stop within STSVEND_GRANT_CACHE_SECONDS of the apply.")
    return lines


def _decided(grant: Any, caller: str, raw: dict[str, Any], now: datetime) -> str:
    """The change for the one grant that decides for the caller (as the file writes it)."""
    if not grant.enabled or (grant.not_after is not None and grant.not_after <= now):
        state = "disabled" if not grant.enabled else "expired"
        if grant.is_pattern:
            return f"{grant.principal} decides for it and is already {state}"
        return f"the grant for {grant.principal}: already {state}"
    if not grant.is_pattern:
        return f'the grant for {grant.principal}: set "enabled": false'
    exact = {**raw[grant.principal], "principal": caller, "enabled": False}
    return (
        f"{grant.principal} admits it; add an exact grant, which decides before any pattern:"
        f" {json.dumps(exact)}"
    )


# --- IAM ---------------------------------------------------------------------------------------------


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def _decoded(document_value: Any) -> Any:
    # botocore decodes IAM's URL-encoded documents; a raw string is decoded here all the same.
    if isinstance(document_value, str):
        return json.loads(urllib.parse.unquote(document_value))
    return document_value


@dataclass(frozen=True)
class RoleState:
    policies: dict[str, set[Entry]]  # the role's revocation policies: name -> the entries it holds
    sizes: dict[str, int]  # the same policies, packed
    others_size: int  # the role's other inline policies, packed
    server_time: datetime | None
    max_session_seconds: int = common.LONGEST_SESSION_SECONDS

    @property
    def current(self) -> set[Entry]:
        return set().union(*self.policies.values())


def is_ours(policy: str) -> bool:
    """A revocation policy: one revocation's, or the one every entry was kept in before."""
    return policy == POLICY_NAME or _ENTRY_POLICY.fullmatch(policy) is not None


def read_role(iam: Any, arn: str) -> RoleState:
    from botocore.exceptions import ClientError

    name = role_name(arn)
    try:
        answer = iam.get_role(RoleName=name)
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            raise common.failure(
                "NoSuchRole",
                f"role {name} does not exist in this account; run with credentials of the role's account"
                f" ({arn.split(':')[4]})",
            ) from None
        raise
    if answer["Role"]["Arn"].lower() != arn.lower():
        raise common.failure(
            "WrongRole", f"IAM has {answer['Role']['Arn']}, not {arn}: check the account and the role's path"
        )
    server_time = _server_time(answer)
    policies: dict[str, set[Entry]] = {}
    sizes: dict[str, int] = {}
    others = 0
    names = [n for page in _pages(iam, name) for n in page]
    for policy in names:
        try:
            body = _decoded(iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                continue  # deleted since the listing (another run pruned it)
            raise
        if not is_ours(policy):
            others += packed_size(body)
            continue
        entries = entries_of(body, policy)
        if policy != POLICY_NAME and [policy_name(e) for e in entries] != [policy]:
            raise not_ours(f"the inline policy {policy} does not hold the one revocation its name says")
        policies[policy] = entries
        sizes[policy] = packed_size(body)
    raw_max = answer["Role"].get("MaxSessionDuration")
    max_session = raw_max if isinstance(raw_max, int) else common.LONGEST_SESSION_SECONDS
    return RoleState(policies, sizes, others, server_time, max_session)


def _pages(iam: Any, name: str) -> list[list[str]]:
    pages, marker = [], None
    while True:
        page = iam.list_role_policies(RoleName=name, **({"Marker": marker} if marker else {}))
        pages.append(list(page.get("PolicyNames", [])))
        if not page.get("IsTruncated"):
            return pages
        marker = page["Marker"]


def _server_time(answer: dict[str, Any]) -> datetime | None:
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).astimezone(timezone.utc) if date else None
    except (TypeError, ValueError):
        return None


# --- the command ---------------------------------------------------------------------------------------


def cmd_revoke(args: argparse.Namespace) -> int:
    return common.run(_revoke, args)


def _target(args: argparse.Namespace, role: str) -> tuple[str, str]:
    chosen = [n for n in ("request_id", "access_key_id", "caller", "all_before_now") if getattr(args, n)]
    if len(chosen) != 1:
        raise common.bad_input("name one of --request-id, --access-key-id, --caller, --all-before-now")
    if args.request_id:
        return REQUEST, common.request_id(args.request_id)
    if args.caller:
        return CALLER, common.caller_tag_value(common.caller_arn(args.caller))
    if args.all_before_now:
        return ALL, ""
    return REQUEST, _request_of_key(args, common.access_key_id(args.access_key_id), role)


def _request_of_key(args: argparse.Namespace, key: str, role: str) -> str:
    """The request id that vended `key`, from the audit log: a session's tags name its request."""
    from stsvend.ops.audit import gather
    from stsvend.ops.audit_query import Question

    if not (args.log or args.stage or args.log_group):
        raise common.bad_input(
            "--access-key-id needs the audit log to find the key's request id: add --log FILE,"
            " --stage STAGE or --log-group NAME (or revoke by --request-id)"
        )
    now = datetime.now(timezone.utc)
    question = Question(since=now - PRUNE_AFTER, until=now, access_key_id=key)
    args.since, args.until = None, None
    vends = [d for d in gather(args, question)[0].decisions if d.vended]
    if not vends:
        raise common.failure(
            "KeyNotFound",
            f"no vend of {key} in the audit log within the last {PRUNE_AFTER.seconds // 60} minutes:"
            " it has expired, or stsvend did not vend it",
        )
    if vends[-1].role_arn.lower() != role.lower():
        raise common.bad_input(f"{key} was vended for {vends[-1].role_arn}, not {role}")
    found = vends[-1].request_id
    if not common.REQUEST_ID.fullmatch(found):
        raise common.failure("MalformedAuditLine", "the audit line of that key holds a malformed request id")
    print(f"{key} was vended by request {found} at {common.utc_text(vends[-1].time)}.")
    return found


@dataclass(frozen=True)
class Plan:
    """What one run writes and deletes, in that order: expired policies first (they deny nothing,
    and free room), then its own policy, then, once that is read back in force, the policies whose
    entries it replaces or covers."""

    policy: dict[str, Any] | None  # the new revocation's document
    name: str | None
    expired: list[str]
    superseded: list[str]
    size: int  # every inline policy of the role while the new one is written, packed
    final_size: int  # ... once the covered ones are deleted


def plan(state: RoleState, result: Merge, earliest: datetime) -> Plan:
    """`earliest`: the earliest clock read (a policy is expired only by every clock)."""
    keep_for = prune_after(state.max_session_seconds)
    new = result.added[0] if result.added else None
    policy = document({new}) if new else None
    new_size = packed_size(policy) if policy else 0
    expired = sorted(
        n for n, es in state.policies.items() if all(e.revoked_at < earliest - keep_for for e in es)
    )
    # Deleted once the new revocation is in force: only what the entries kept deny as well.
    gone = sorted(
        n
        for n, es in state.policies.items()
        if n not in expired
        and not es & result.entries
        and all(e.revoked_at < earliest - keep_for or covered(result.entries, e) for e in es)
    )
    during = state.others_size + new_size + sum(v for n, v in state.sizes.items() if n not in expired)
    final = during - sum(state.sizes[n] for n in gone)
    return Plan(policy, policy_name(new) if new else None, expired, gone, during, final)


def _delete(iam: Any, role: str, policy: str) -> None:
    # NoSuchEntity: another run deleted it first.
    unless_refused(
        lambda: iam.delete_role_policy(RoleName=role_name(role), PolicyName=policy), "NoSuchEntity"
    )


def _put(iam: Any, role: str, policy: str, document_: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    try:
        iam.put_role_policy(RoleName=role_name(role), PolicyName=policy, PolicyDocument=json.dumps(document_))
    except ClientError as exc:
        if error_code(exc) == "LimitExceeded":
            raise common.failure(
                "PolicyTooLarge",
                f"IAM refused {policy}: the role's inline policies would exceed IAM's {MAX_INLINE_CHARS:,}"
                " characters (another run may have written since); nothing was written. Revoke every"
                ' session with --all-before-now, or the console\'s "Revoke active sessions"',
            ) from None
        raise


def confirm(
    iam: Any,
    role: str,
    wanted: Entry,
    rewrite: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Read the role's policies until `wanted` is in force (its policy, or one that covers it); its
    policy missing and nothing covering it, it is written again (the same name, the same document).
    Not in force within CONFIRM_SECONDS: the command's error, and nothing is reported done."""
    started, delay = clock(), 0.25
    while True:
        state = read_role(iam, role)
        if covered(state.current, wanted):
            return
        if clock() - started + delay > CONFIRM_SECONDS:
            raise common.failure(
                "NotInForce",
                f"{policy_name(wanted)} was written but could not be read back in force within"
                f" {CONFIRM_SECONDS:.0f} s: do not count on it; run the command again",
            )
        if policy_name(wanted) not in state.policies:
            rewrite()
        sleep(delay)
        delay = min(delay * 2, 4.0)


def _revoke(args: argparse.Namespace) -> int:
    role = common.role_arn(args.role)
    kind, value = _target(args, role)
    aws = common.Aws.for_stage(args.root, args.stage) if args.stage else common.Aws()
    iam = aws.client("iam")
    state = read_role(iam, role)
    # Two clocks, this machine's and IAM's (its answer's Date): a revocation is dated by the later
    # (it then covers more), a policy pruned by the earlier (it then denies nothing by either).
    local = datetime.now(timezone.utc)
    now, earliest = max(local, state.server_time or local), min(local, state.server_time or local)
    result = merge(state.current, kind, value, now, prune_after(state.max_session_seconds), earliest)
    steps = plan(state, result, earliest)
    print(f"Role {role}, inline policy {POLICY_NAME}:")
    for entry in result.added:
        print(f"+ deny {entry.describe()}")
    for entry in result.kept:
        print(f"= deny {entry.describe()} (already there)")
    for entry in result.replaced:
        print(f"- {entry.describe()} (replaced by the later time)")
    for entry in result.pruned:
        print(f"- {entry.describe()} (nothing left for it to deny)")
    for entry in sorted(result.entries - set(result.added) - set(result.kept)):
        print(f"  deny {entry.describe()}")
    # A revocation of one request or caller leaves room for one of every session, the way out
    # when the role's policies are full.
    reserve = 0 if kind == ALL else packed_size(document({Entry(ALL, "", now)}) or {})
    if steps.policy is not None and steps.size + reserve > MAX_INLINE_CHARS:
        raise common.failure(
            "PolicyTooLarge",
            f"the policy would not fit: with the role's other inline policies it is {steps.size:,} characters"
            f" (and {reserve:,} kept free for --all-before-now), IAM allows {MAX_INLINE_CHARS:,}; nothing"
            " was written. "
            + ("Revoke every session with --all-before-now (one statement), or" if reserve else "Use")
            + " the console's \"Revoke active sessions\" (or shrink the role's other inline policies)",
        )
    if steps.policy is not None:
        print(
            f"Policy {steps.name} ({packed_size(steps.policy):,} characters; {steps.final_size:,} of IAM's"
            f" {MAX_INLINE_CHARS:,} with the role's other inline policies):"
        )
        print(shown(steps.policy))
    if not result.changed:
        print("No change.")
    elif not args.apply:
        print("Dry run: nothing written; add --apply to write it.")
    else:
        _apply(iam, role, steps, result)
    if kind == CALLER:
        root: Path | None
        try:
            root = common.find_checkout(args.root)
        except CommandError:
            root = None  # the grants change is then described, not pointed to
        print()
        for line in grants_change(root, common.caller_arn(args.caller)):
            print(identifier(line))
    return 0


def _apply(iam: Any, role: str, steps: Plan, result: Merge) -> None:
    for policy in steps.expired:
        _delete(iam, role, policy)
    if steps.policy is not None and steps.name is not None:
        name, document_ = steps.name, steps.policy
        _put(iam, role, name, document_)
        confirm(iam, role, result.added[0], lambda: _put(iam, role, name, document_))
        print(
            f"Written: {POLICY_NAME} on {role_name(role)}. Read back in force ({name}):"
            " sessions it names are denied every action."
        )
    for policy in steps.superseded:
        _delete(iam, role, policy)
    deleted = steps.expired + steps.superseded
    if deleted:
        print(f"Deleted from {role_name(role)}, nothing left for them to deny: {', '.join(deleted)}.")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "revoke", help="deny the sessions stsvend already vended for a role (incident response)"
    )
    parser.add_argument(
        "--role", required=True, metavar="ARN", help="the target role whose sessions to cut off"
    )
    which = parser.add_argument_group("which sessions (one of)")
    which.add_argument("--request-id", help="the session of one request")
    which.add_argument("--access-key-id", help="the session of one access key (found in the audit log)")
    which.add_argument("--caller", metavar="ARN", help="every session of one caller, issued before now")
    which.add_argument(
        "--all-before-now", action="store_true", help="every stsvend session issued before now"
    )
    parser.add_argument("--apply", action="store_true", help="write the policy (without it: show it)")
    source = parser.add_argument_group("audit log, for --access-key-id (one of)")
    source.add_argument("--log", metavar="FILE")
    source.add_argument("--stage", help="a stage's log group; local: the local stack (and its emulator)")
    source.add_argument("--log-group")
    parser.add_argument("--deadline", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")
