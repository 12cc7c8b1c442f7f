"""`stsvend grants apply`: a plan written in conditional transactions, never wider than planned.

A plan that fits one DynamoDB transaction (100 actions, 4 MB) is written all or nothing. A larger one
cannot be, so it is written in two steps, each in as many transactions as it needs:

1. every grant the plan touches is made to deny: an added grant is written disabled, a changed or
   removed grant is disabled in place (one already disabled is left alone);
2. the plan itself: removals, then changes, then additions, each conditional on the first step's write.

A disabled grant still decides for the callers it matches, and denies them, so step 1 only ever takes
access away, and any part of step 2 grants at most what the whole plan grants: an apply that stops in
a later transaction leaves no addition or change in force while a removal or disable is not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from stsvend.checkout.model import to_attribute
from stsvend.checkout.plan import GrantChange, GrantPlan
from stsvend.constants import TIMESTAMP_FORMAT
from stsvend.terminal import identifier as printable

# DynamoDB allows 100 actions and 4 MB per transaction; sizes are estimated, so stay well below.
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_000_000

_MISSING = object()  # the item does not exist (as opposed to existing without a version)


@dataclass(frozen=True)
class ApplyResult:
    """What an apply wrote. After a failure, `applied` lists exactly the changes that are in the
    table, `not_applied` those that are not, and `unknown` those whose outcome was not seen;
    `disabled` (among `not_applied`) are left disabled by the first step of a large apply, denying
    until apply runs again."""

    applied: tuple[GrantChange, ...]
    not_applied: tuple[GrantChange, ...] = ()
    unknown: tuple[GrantChange, ...] = ()
    error: str | None = None
    disabled: tuple[GrantChange, ...] = ()
    transactions: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def _next_version(version: Any) -> int:
    return int(version) + 1 if isinstance(version, (int, Decimal)) else 1


def _guard(table: str, expected: Any) -> dict[str, Any]:
    """The condition that the item is as this apply last saw it: absent, or at `expected` version."""
    # DynamoDB refuses names and values the expression does not use.
    values: dict[str, Any] = {}
    if expected is _MISSING:
        condition, names = "attribute_not_exists(#p)", {"#p": "principal"}
    elif expected is None:
        # Written by hand without bookkeeping: all we can require is that it still is so.
        condition = "attribute_exists(#p) AND attribute_not_exists(#v)"
        names = {"#p": "principal", "#v": "version"}
    else:
        condition, names = "#v = :expected", {"#v": "version"}
        values[":expected"] = to_attribute(expected)
    guard: dict[str, Any] = {
        "TableName": table,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        guard["ExpressionAttributeValues"] = values
    return guard


def _grant_key(change: GrantChange) -> tuple[str, str]:
    return change.account_id, change.principal


def _key(change: GrantChange) -> dict[str, Any]:
    return {"account_id": {"S": change.account_id}, "principal": {"S": change.principal}}


def _put(
    table: str, item: dict[str, Any], expected: Any, stamp: str, updated_by: str | None
) -> dict[str, Any]:
    written = {**item, "version": _next_version(expected), "updated_at": stamp}
    if updated_by:
        written["updated_by"] = updated_by
    return {
        "Put": {"Item": {k: to_attribute(v) for k, v in written.items()}, **_guard(table, expected)}
    }


def _final(
    table: str, change: GrantChange, expected: Any, stamp: str, updated_by: str | None
) -> dict[str, Any]:
    """The write that makes the table hold what the plan wants for this grant."""
    if change.kind == "remove":
        return {"Delete": {"Key": _key(change), **_guard(table, expected)}}
    assert change.item is not None
    return _put(table, change.item, expected, stamp, updated_by)


def _disable(
    table: str, change: GrantChange, stamp: str, updated_by: str | None
) -> dict[str, Any] | None:
    """Step 1's write for this grant (it denies afterwards), or None if it denies already."""
    if change.kind == "add":
        assert change.item is not None
        return _put(table, {**change.item, "enabled": False}, _MISSING, stamp, updated_by)
    if (change.current or {}).get("enabled") is False:
        return None
    guard = _guard(table, change.version)
    names = {**guard["ExpressionAttributeNames"], "#e": "enabled", "#v": "version", "#t": "updated_at"}
    values = {
        **guard.get("ExpressionAttributeValues", {}),
        ":off": {"BOOL": False},
        ":next": to_attribute(_next_version(change.version)),
        ":stamp": {"S": stamp},
    }
    update = "SET #e = :off, #v = :next, #t = :stamp"
    if updated_by:
        names["#b"] = "updated_by"
        values[":by"] = {"S": updated_by}
        update += ", #b = :by"
    return {
        "Update": {
            "Key": _key(change),
            "UpdateExpression": update,
            **guard,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


Write = tuple[GrantChange, dict[str, Any]]


def _batches(writes: Sequence[Write]) -> Iterator[list[Write]]:
    batch: list[Write] = []
    size = 0
    for change, write in writes:
        write_size = len(json.dumps(write))
        full = len(batch) == MAX_TRANSACTION_ITEMS or size + write_size > MAX_TRANSACTION_BYTES
        if batch and full:
            yield batch
            batch, size = [], 0
        batch.append((change, write))
        size += write_size
    if batch:
        yield batch


def _conflicts(error: Any, batch: list[Write]) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [
        printable(change.principal)
        for (change, _), reason in zip(batch, reasons, strict=False)
        if reason.get("Code") in ("ConditionalCheckFailed", "TransactionConflict")
    ]


@dataclass
class _Failure:
    batch: tuple[GrantChange, ...]
    message: str
    unknown: bool


class _Writer:
    """Writes lists of actions in transactions, counting them across the steps of one apply."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.transactions = 0

    def write(self, writes: Sequence[Write]) -> tuple[list[GrantChange], _Failure | None]:
        """Write in transactions, in order; stop at the first that fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        done: list[GrantChange] = []
        for batch in _batches(writes):
            changes = tuple(change for change, _ in batch)
            try:
                # The token makes botocore's own retries of this call idempotent.
                self.client.transact_write_items(
                    TransactItems=[write for _, write in batch], ClientRequestToken=str(uuid.uuid4())
                )
            except ClientError as exc:
                error = exc.response.get("Error", {})
                conflicts = _conflicts(exc, batch)
                if conflicts:
                    message = (
                        "the table changed since the plan (changed concurrently:"
                        f" {', '.join(conflicts)}); nothing after it was applied; run plan again"
                    )
                else:
                    message = (
                        "DynamoDB refused the write"
                        f" ({printable(str(error.get('Code')))}: {printable(str(error.get('Message')))});"
                        " nothing after it was applied"
                    )
                return done, _Failure(changes, message, unknown=False)
            except BotoCoreError as exc:
                return done, _Failure(
                    changes, f"the write's outcome is unknown ({exc}); run plan to see the table",
                    unknown=True,
                )
            finally:
                self.transactions += 1
            done.extend(changes)
        return done, None


def apply_changes(
    client: Any,
    table: str,
    plan: GrantPlan,
    *,
    updated_by: str | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Write the plan: in one all-or-nothing transaction if it fits, else in the two steps above.

    Each write is conditional on the item being as the plan (or step 1) left it, so a concurrent
    change cancels the transaction it falls in and nothing after it is attempted.
    """
    stamp = (now or datetime.now(timezone.utc)).strftime(TIMESTAMP_FORMAT)
    ordered = plan.removed + plan.changed + plan.added
    # What each write is conditional on, by grant key (one change per key in a plan).
    expected = {_grant_key(c): (_MISSING if c.kind == "add" else c.version) for c in ordered}
    final = [(c, _final(table, c, expected[_grant_key(c)], stamp, updated_by)) for c in ordered]
    writer = _Writer(client)
    if len(list(_batches(final))) <= 1:
        done, failure = writer.write(final)
        return _result(ordered, done, failure, (), writer.transactions)

    disables: list[Write] = []
    for change in ordered:
        write = _disable(table, change, stamp, updated_by)
        if write is not None:
            disables.append((change, write))
    disabled, failure = writer.write(disables)
    if failure is not None:
        return _result(ordered, [], failure, disabled, writer.transactions)
    for change in disabled:
        expected[_grant_key(change)] = 1 if change.kind == "add" else _next_version(change.version)
    final = [(c, _final(table, c, expected[_grant_key(c)], stamp, updated_by)) for c in ordered]
    done, failure = writer.write(final)
    return _result(ordered, done, failure, disabled, writer.transactions)


def _result(
    ordered: Sequence[GrantChange],
    done: Sequence[GrantChange],
    failure: _Failure | None,
    disabled: Sequence[GrantChange],
    transactions: int,
) -> ApplyResult:
    if failure is None:
        return ApplyResult(tuple(done), transactions=transactions)
    applied = {_grant_key(c) for c in done}
    unknown = {_grant_key(c) for c in failure.batch} if failure.unknown else set()
    return ApplyResult(
        applied=tuple(done),
        not_applied=tuple(c for c in ordered if _grant_key(c) not in applied | unknown),
        unknown=tuple(c for c in ordered if _grant_key(c) in unknown),
        error=failure.message,
        disabled=tuple(c for c in disabled if _grant_key(c) not in applied | unknown),
        transactions=transactions,
    )
