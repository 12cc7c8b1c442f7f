"""The grants table: created by `stsvend bootstrap`, read whole by `grants plan` and `grants list`."""

from __future__ import annotations

from typing import Any

from stsvend.aws import unless_refused
from stsvend.checkout.model import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA
from stsvend.errors import CommandError


def create_table(client: Any, table: str) -> bool:
    """Create the grants table if it is missing (True if created), wait until it is ACTIVE and make
    sure point-in-time recovery is on. An existing table with another key schema is an error."""
    created = unless_refused(
        lambda: client.create_table(
            TableName=table,
            KeySchema=KEY_SCHEMA,
            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
            DeletionProtectionEnabled=True,
        ),
        "ResourceInUseException",
    ) is not None
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
    )
    if not created:
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
        if sorted(schema, key=lambda k: k["KeyType"]) != KEY_SCHEMA:
            raise CommandError(
                "WrongKeySchema",
                f"table {table} exists with key schema {schema}; stsvend needs account_id (HASH)"
                " and principal (RANGE)"
            )
    client.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return created


def scan_items(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the table, as DynamoDB attribute values (a consistent, paginated Scan)."""
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page.get("Items", [])]
