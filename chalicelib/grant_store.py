"""The grants table in DynamoDB: its key schema, the attribute codec, item parsing and the cached
per-account Query (docs/design.md section 3). The one place the server reads grants from AWS; the admin
commands, tests and benchmarks take the schema and codec from here too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from chalicelib.errors import ServiceUnavailable
from chalicelib.grants import AnyGrant, BrokenGrant, GrantError, parse_grant

PARTITION_KEY = "account_id"
SORT_KEY = "principal"
KEY_SCHEMA = [
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": SORT_KEY, "AttributeType": "S"},
]
QUERY_CONDITION = f"{PARTITION_KEY} = :a"


def from_attribute(value: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value to Python (the types grants use, plus sets)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return Decimal(inner)
    if kind == "BOOL":
        return bool(inner)
    if kind == "NULL":
        return None
    if kind == "L":
        return [from_attribute(v) for v in inner]
    if kind == "M":
        return {k: from_attribute(v) for k, v in inner.items()}
    if kind == "SS":
        return list(inner)
    raise ValueError(f"unsupported DynamoDB type {kind}")


def to_attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attribute(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def to_item(plain: Mapping[str, Any]) -> dict[str, Any]:
    """A grant's stored form (`Grant.to_item()`, or a hand-written dict) as DynamoDB attributes."""
    return {k: to_attribute(v) for k, v in plain.items()}


def grant_from_item(item: Mapping[str, Any]) -> AnyGrant:
    """A stored item as a grant; one that does not parse is kept as a BrokenGrant naming its problem."""
    principal = item.get(SORT_KEY, {}).get("S", "")
    try:
        return parse_grant({k: from_attribute(v) for k, v in item.items()})
    except (GrantError, ValueError, TypeError) as exc:
        return BrokenGrant(principal, str(exc))


class GrantStore:
    """Grants by account: one DynamoDB Query per account, kept in memory for `ttl_seconds`."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        table_name: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client_factory
        self._table = table_name
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[AnyGrant, ...]]] = {}
        self._lock = threading.Lock()

    def for_account(self, account_id: str) -> tuple[AnyGrant, ...]:
        now = self._clock()
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        grants = tuple(grant_from_item(item) for item in self._query(account_id))
        if self._ttl > 0:
            with self._lock:
                self._cache[account_id] = (now + self._ttl, grants)
        return grants

    def items(self, partition: str) -> list[dict[str, Any]]:
        """The raw items of one partition (the `oidc` partition holds issuers and OIDC grants)."""
        return self._query(partition)

    def _query(self, account_id: str) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client_factory()
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": QUERY_CONDITION,
            "ExpressionAttributeValues": {":a": {"S": account_id}},
        }
        items: list[dict[str, Any]] = []
        try:
            while True:
                page = client.query(**kwargs)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable("the grants table could not be read; try again") from exc
