"""In-memory stand-ins for the service's AWS collaborators, for tests that run thousands of cases."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib.audit import Auditor
from chalicelib.config import Settings
from chalicelib.grant_store import PARTITION_KEY, QUERY_CONDITION, SORT_KEY, GrantStore, to_item
from chalicelib.service import Stsvend, identity_resolver

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings(
    grants_table="grants",
    identity_mode="apigateway",
    server_ids=(),
    grant_cache_seconds=0,
    region="us-east-1",
)


class FakeDynamoDB:
    """The grants table as the service uses it: PutItem replaces by key, Query on the partition key
    answers in sort-key (byte) order, a wrong table or condition is refused as DynamoDB would.
    `tests/functional/test_grant_store.py` holds it to a moto server with the same cases."""

    def __init__(self, items: list[dict[str, Any]], table: str = SETTINGS.grants_table) -> None:
        self.table = table
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self.queries: list[str] = []
        for item in items:
            self.put_item(TableName=table, Item=to_item(item))

    def _check_table(self, name: str) -> None:
        if name != self.table:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}},
                "Query",
            )

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self._check_table(kwargs["TableName"])
        item = kwargs["Item"]
        self._items[(item[PARTITION_KEY]["S"], item[SORT_KEY]["S"])] = item
        return {}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self._check_table(kwargs["TableName"])
        if kwargs["KeyConditionExpression"] != QUERY_CONDITION:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad key"}}, "Query")
        account = kwargs["ExpressionAttributeValues"][":a"]["S"]
        self.queries.append(account)
        keys = sorted((k for k in self._items if k[0] == account), key=lambda k: k[1].encode())
        return {"Items": [self._items[k] for k in keys], "Count": len(keys)}


class FakeSts:
    _serial = itertools.count()

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        n = next(self._serial)
        account = params["RoleArn"].split(":")[4]
        role = params["RoleArn"].rsplit("/", 1)[1]
        return {
            "Credentials": {
                "AccessKeyId": f"ASIAFAKE{n:012d}",
                "SecretAccessKey": f"fake-secret-{n}",
                "SessionToken": f"fake-token-{n}",
                "Expiration": NOW + timedelta(seconds=params["DurationSeconds"]),
            },
            "AssumedRoleUser": {
                "Arn": f"arn:aws:sts::{account}:assumed-role/{role}/{params['RoleSessionName']}",
                "AssumedRoleId": "AROAFAKE:x",
            },
        }


class FakeClients:
    def __init__(self, ddb: FakeDynamoDB, sts: FakeSts) -> None:
        self._ddb = ddb
        self._sts = sts
        self.posts: list[str] = []

    def dynamodb(self) -> FakeDynamoDB:
        return self._ddb

    def sts(self) -> FakeSts:
        return self._sts

    def sts_endpoint(self) -> str:
        return "https://sts.us-east-1.amazonaws.com"

    def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.posts.append(url)
        return 403, b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"


QUIET_AUDITOR = Auditor(Logger(service="stsvend-fakes", level="CRITICAL"))


def fake_service(
    items: list[dict[str, Any]], auditor: Auditor = QUIET_AUDITOR, settings: Settings = SETTINGS
) -> tuple[Stsvend, FakeSts]:
    ddb = FakeDynamoDB(items)
    sts = FakeSts()
    clients: Any = FakeClients(ddb, sts)
    store = GrantStore(clients.dynamodb, settings.grants_table, 0)
    identity = identity_resolver(settings, clients)
    return Stsvend(settings, clients, store, auditor, identity, now=lambda: NOW), sts
