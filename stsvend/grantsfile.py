"""Grants as code (DESIGN.md section 3): the grants file, validated with the server's own grant
model, diffed against the grants table and applied with conditional writes; and the table itself.

The wheel ships only `stsvend`; the grant model lives in an stsvend checkout's `chalicelib`, so
these functions run from a checkout and import the model from there (`open_checkout`). Called in a
process that has not opened one, they load it from the checkout around the current directory.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from chalicelib.grants import Grant

# DynamoDB allows 100 actions and 4 MB per transaction; sizes are estimated, so stay well below.
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_000_000


class AdminError(Exception):
    """An admin command cannot go on; the message is fit to print as it is."""


# --- the checkout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """An stsvend checkout: where the grants files, session policies and stage settings live."""

    root: Path

    @property
    def session_dir(self) -> Path:
        return self.root / "policies" / "session"

    @property
    def trust_template(self) -> Path:
        return self.root / "policies" / "trust" / "stsvend-target-role.json"

    def grants_file(self, stage: str) -> Path:
        return self.root / "policies" / "grants" / f"{stage}.json"

    def grants_table(self, stage: str) -> str:
        """The stage's STSVEND_GRANTS_TABLE, as the deployed Lambda will see it."""
        path = self.root / ".chalice" / "config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AdminError(f"{path} cannot be read: {exc}") from None
        stages = config.get("stages", {})
        if stage not in stages:
            raise AdminError(
                f"no stage {stage!r} in {path} (stages: {', '.join(sorted(stages)) or 'none'})"
            )
        # Chalice merges the stage's environment over the top-level one.
        env = {**config.get("environment_variables", {}),
               **stages[stage].get("environment_variables", {})}
        table = env.get("STSVEND_GRANTS_TABLE")
        if not isinstance(table, str) or not table:
            raise AdminError(
                f"stage {stage!r} in {path} sets no STSVEND_GRANTS_TABLE; pass --table"
            )
        return table


def find_checkout(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `.chalice/config.json`."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / ".chalice" / "config.json").is_file():
            return directory
    raise AdminError(
        f"not in an stsvend checkout: no .chalice/config.json in {start} or any parent."
        " The admin commands run from a checkout (they validate grants with its chalicelib);"
        " cd into one or pass --root"
    )


def open_checkout(root: str | Path | None = None) -> Checkout:
    """The checkout at `root` (default: found from the cwd), with its grant model imported."""
    path = Path(root).resolve() if root is not None else find_checkout(Path.cwd())
    if not (path / ".chalice" / "config.json").is_file():
        raise AdminError(f"{path} is not an stsvend checkout (no .chalice/config.json)")
    if not (path / "chalicelib" / "grants.py").is_file():
        raise AdminError(f"{path} is not an stsvend checkout (no chalicelib/grants.py)")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import chalicelib.grants

    loaded_from = Path(chalicelib.grants.__file__).resolve().parents[1]
    if loaded_from != path:
        raise AdminError(
            f"the grant model is already loaded from {loaded_from}, not from the checkout {path}"
        )
    return Checkout(path)


def _ensure_model() -> None:
    if "chalicelib.grants" not in sys.modules:
        open_checkout()


# --- the grants file ---------------------------------------------------------------------------


def load_grants_file(path: Path, session_dir: Path) -> list[Grant]:
    """The grants in `path` (a JSON list), session policies resolved from `session_dir/<name>.json`.

    Raises GrantError naming the file, and the grant and field at fault.
    """
    _ensure_model()
    from chalicelib.grants import GrantError, parse_grant

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GrantError(f"{path}: cannot be read ({exc})") from None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrantError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(entries, list):
        raise GrantError(f"{path}: must be a JSON list of grants")

    policies = session_dir.resolve()

    def resolve_policy(name: str) -> str | None:
        candidate = (policies / f"{name}.json").resolve()
        if candidate.parent != policies or not candidate.is_file():
            return None
        return candidate.read_text(encoding="utf-8")

    grants: list[Grant] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(entries):
        try:
            grant = parse_grant(raw, resolve_policy=resolve_policy)
        except GrantError as exc:
            raise GrantError(f"{path}: grants[{index}]: {exc}") from None
        if grant.principal in first_index:
            raise GrantError(
                f"{path}: grants[{index}]: grant {grant.principal!r}: principal is already"
                f" granted by grants[{first_index[grant.principal]}]; one grant per principal"
            )
        first_index[grant.principal] = index
        grants.append(grant)
    return grants


# --- plan --------------------------------------------------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One attribute of a grant that differs; `path` like `roles[0].max_duration_seconds`."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class GrantChange:
    kind: Literal["add", "change", "remove"]
    account_id: str
    principal: str
    item: dict[str, Any] | None  # the desired stored item; None for a removal
    current: dict[str, Any] | None  # the stored item without bookkeeping; None for an addition
    version: Any  # the stored item's `version`, which the write is conditional on
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class GrantPlan:
    added: tuple[GrantChange, ...]
    changed: tuple[GrantChange, ...]
    removed: tuple[GrantChange, ...]

    @property
    def changes(self) -> tuple[GrantChange, ...]:
        return self.added + self.changed + self.removed

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> str:
        return (
            f"{len(self.added)} to add, {len(self.changed)} to change,"
            f" {len(self.removed)} to remove"
        )


def _plain(value: Any) -> Any:
    """Stored numbers as the file has them (whole numbers as int), for comparing and printing."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _from_attribute(attribute: Mapping[str, Any]) -> Any:
    from chalicelib.grant_store import from_attribute

    try:
        return _plain(from_attribute(attribute))
    except ValueError:
        # A type grants never use (binary, number sets): kept raw, so it differs from any grant.
        return dict(attribute)


def _diff(old: Any, new: Any, path: str = "") -> Iterator[FieldChange]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _diff(
                old.get(key, ABSENT), new.get(key, ABSENT), f"{path}.{key}" if path else key
            )
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (o, n) in enumerate(zip(old, new, strict=True)):
            yield from _diff(o, n, f"{path}[{index}]")
    elif old != new or type(old) is not type(new):
        yield FieldChange(path, old, new)


def scan_items(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the table, as DynamoDB attribute values (a consistent, paginated Scan)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    items: list[dict[str, Any]] = []
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def plan_changes(client: Any, table: str, grants: Sequence[Grant]) -> GrantPlan:
    """What writing `grants` would change in the table; the file is the whole truth, so a stored
    grant it does not list is removed. Bookkeeping attributes are not compared."""
    _ensure_model()
    from chalicelib.grants import BOOKKEEPING

    current: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
    for raw in scan_items(client, table):
        item = {k: _from_attribute(v) for k, v in raw.items()}
        key = (str(item.get("account_id")), str(item.get("principal")))
        version = item.get("version")
        current[key] = ({k: v for k, v in item.items() if k not in BOOKKEEPING}, version)
    desired = {(g.account_id, g.principal): g.to_item() for g in grants}

    added, changed, removed = [], [], []
    for key in sorted(desired.keys() | current.keys()):
        want = desired.get(key)
        have, version = current.get(key, (None, None))
        if have is None:
            added.append(GrantChange("add", *key, item=want, current=None, version=None))
        elif want is None:
            removed.append(GrantChange("remove", *key, item=None, current=have, version=version))
        else:
            fields = tuple(_diff(have, want))
            if fields:
                changed.append(
                    GrantChange("change", *key, item=want, current=have, version=version,
                                fields=fields)
                )
    return GrantPlan(tuple(added), tuple(changed), tuple(removed))


# --- apply -------------------------------------------------------------------------------------


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
    from chalicelib.grant_store import to_attribute

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

    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
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


# --- the table ---------------------------------------------------------------------------------

def create_table(client: Any, table: str) -> bool:
    """Create the grants table if it is missing (True if created), wait until it is ACTIVE and make
    sure point-in-time recovery is on. An existing table with another key schema is an error."""
    from botocore.exceptions import ClientError

    from chalicelib.grant_store import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA

    try:
        client.create_table(
            TableName=table,
            KeySchema=KEY_SCHEMA,
            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
            DeletionProtectionEnabled=True,
        )
        created = True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        created = False
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
    )
    if not created:
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
        if sorted(schema, key=lambda k: k["KeyType"]) != KEY_SCHEMA:
            raise AdminError(
                f"table {table} exists with key schema {schema}; stsvend needs account_id (HASH)"
                " and principal (RANGE)"
            )
    client.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return created
