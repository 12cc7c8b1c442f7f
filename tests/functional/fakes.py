"""In-memory stand-ins for the service's AWS collaborators, for tests that run thousands of cases."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.audit import Auditor
from chalicelib.config import Settings
from chalicelib.grants import GrantStore, to_attribute
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
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = [{k: to_attribute(v) for k, v in item.items()} for item in items]
        self.queries: list[str] = []

    def query(self, **kwargs: Any) -> dict[str, Any]:
        account = kwargs["ExpressionAttributeValues"][":a"]["S"]
        self.queries.append(account)
        return {"Items": [i for i in self.items if i["account_id"]["S"] == account]}


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
