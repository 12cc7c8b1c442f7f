"""`stsvend grants apply`: a plan written in all-or-nothing, conditional transactions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from stsvend import TIMESTAMP_FORMAT
from stsvend.checkout.model import to_attribute
from stsvend.checkout.plan import GrantChange, GrantPlan

# DynamoDB allows 100 actions and 4 MB per transaction; sizes are estimated, so stay well below.
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_000_000


@dataclass(frozen=True)
class ApplyResult:
    """What an apply wrote. After a failure, `applied` lists exactly the changes that are in the
    table, `not_applied` those that are not, and `unknown` those whose outcome was not seen."""

    applied: tuple[GrantChange, ...]
    not_applied: tuple[GrantChange, ...] = ()
    unknown: tuple[GrantChange, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _write(
    table: str, change: GrantChange, stamp: str, updated_by: str | None
) -> dict[str, Any]:
    """The TransactWriteItems action for one change, conditional on the state the plan saw."""
    # DynamoDB refuses names and values the expression does not use.
    names: dict[str, str]
    values: dict[str, Any] = {}
    if change.kind == "add":
        condition, names = "attribute_not_exists(#p)", {"#p": "principal"}
    elif change.version is None:
        # Written by hand without bookkeeping: all we can require is that it still is so.
        condition = "attribute_exists(#p) AND attribute_not_exists(#v)"
        names = {"#p": "principal", "#v": "version"}
    else:
        condition, names = "#v = :expected", {"#v": "version"}
        values[":expected"] = to_attribute(change.version)
    guard: dict[str, Any] = {
        "TableName": table,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        guard["ExpressionAttributeValues"] = values
    if change.kind == "remove":
        key = {"account_id": {"S": change.account_id}, "principal": {"S": change.principal}}
        return {"Delete": {"Key": key, **guard}}
    assert change.item is not None
    previous = change.version if isinstance(change.version, (int, Decimal)) else 0
    item = {**change.item, "version": int(previous) + 1, "updated_at": stamp}
    if updated_by:
        item["updated_by"] = updated_by
    return {"Put": {"Item": {k: to_attribute(v) for k, v in item.items()}, **guard}}


def _batches(
    writes: list[tuple[GrantChange, dict[str, Any]]],
) -> Iterator[list[tuple[GrantChange, dict[str, Any]]]]:
    batch: list[tuple[GrantChange, dict[str, Any]]] = []
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


def _conflicts(error: Any, batch: list[tuple[GrantChange, dict[str, Any]]]) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [
        change.principal
        for (change, _), reason in zip(batch, reasons, strict=False)
        if reason.get("Code") in ("ConditionalCheckFailed", "TransactionConflict")
    ]


def apply_changes(
    client: Any,
    table: str,
    plan: GrantPlan,
    *,
    updated_by: str | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Write the plan in all-or-nothing transactions (one for up to 100 changes).

    Each write is conditional on the item being as the plan saw it (its `version`, or its absence),
    so a concurrent change cancels the transaction it falls in and nothing after it is attempted.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    stamp = (now or datetime.now(timezone.utc)).strftime(TIMESTAMP_FORMAT)
    writes = [(c, _write(table, c, stamp, updated_by)) for c in plan.changes]
    batches = list(_batches(writes))
    applied: list[GrantChange] = []
    for number, batch in enumerate(batches):
        changes = tuple(change for change, _ in batch)
        later = tuple(change for b in batches[number + 1:] for change, _ in b)
        try:
            # The token makes botocore's own retries of this call idempotent.
            client.transact_write_items(
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
                    f"DynamoDB refused the write ({error.get('Code')}: {error.get('Message')});"
                    " nothing after it was applied"
                )
            return ApplyResult(tuple(applied), changes + later, error=message)
        except BotoCoreError as exc:
            return ApplyResult(
                tuple(applied), later, unknown=changes,
                error=f"the write's outcome is unknown ({exc}); run plan to see the table",
            )
        applied.extend(changes)
    return ApplyResult(tuple(applied))
