"""The grant store against the in-memory fake and against a moto server, with the same cases: the
fake the property tests rely on must answer as the emulator does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.errors import ServiceUnavailable
from chalicelib.grant_store import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA, GrantStore, to_item
from chalicelib.grants import BrokenGrant, Grant
from tests.functional.conftest import REGION, moto_api
from tests.functional.fakes import FakeDynamoDB

TABLE = "stsvend-grants-store"
ROLE = {"role_arn": "arn:aws:iam::222222222222:role/deployer"}


def grant(principal: str, **fields: Any) -> dict[str, Any]:
    return {"account_id": principal.split(":")[4], "principal": principal, "roles": [ROLE], **fields}


@pytest.fixture(params=["fake", "moto"])
def table(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A DynamoDB client holding an empty grants table named TABLE."""
    if request.param == "fake":
        yield FakeDynamoDB([], table=TABLE)
        return
    url = request.getfixturevalue("moto_url")
    moto_api(url, "/moto-api/reset")
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="AKIASTORETEST0000001",
        aws_secret_access_key="not-a-secret",
    )
    client.create_table(
        TableName=TABLE,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        BillingMode="PAY_PER_REQUEST",
    )
    yield client


def put(client: Any, item: dict[str, Any]) -> None:
    client.put_item(TableName=TABLE, Item=to_item(item))


def test_a_query_reads_one_account_in_sort_key_byte_order(table: Any) -> None:
    principals = [
        "arn:aws:iam::111111111111:role/deploy",
        "arn:aws:iam::111111111111:role/Deploy",  # differs only in case: a separate item
        "arn:aws:iam::111111111111:role/ci-*",
        "arn:aws:iam::111111111111:user/alice",
        "arn:aws:iam::222222222222:role/deploy",
    ]
    for principal in principals:
        put(table, grant(principal))
    found = GrantStore(lambda: table, TABLE, 0).for_account("111111111111")
    assert [g.principal for g in found] == [
        "arn:aws:iam::111111111111:role/Deploy",
        "arn:aws:iam::111111111111:role/ci-*",
        "arn:aws:iam::111111111111:role/deploy",
        "arn:aws:iam::111111111111:user/alice",
    ]
    assert all(isinstance(g, Grant) for g in found)
    assert GrantStore(lambda: table, TABLE, 0).for_account("333333333333") == ()


def test_a_put_on_the_same_key_replaces_the_item(table: Any) -> None:
    principal = "arn:aws:iam::111111111111:role/deploy"
    put(table, grant(principal, description="first"))
    put(table, grant(principal, description="second", version=2))
    (only,) = GrantStore(lambda: table, TABLE, 0).for_account("111111111111")
    assert isinstance(only, Grant) and only.description == "second"


def test_an_item_that_does_not_parse_comes_back_broken_naming_its_field(table: Any) -> None:
    principal = "arn:aws:iam::111111111111:role/deploy"
    put(table, grant(principal, roles=[{"role_arn": "arn:aws:iam::\uff12" + "2" * 11 + ":role/x"}]))
    (broken,) = GrantStore(lambda: table, TABLE, 0).for_account("111111111111")
    assert isinstance(broken, BrokenGrant)
    assert broken.principal == principal and "roles[0].role_arn" in broken.problem


def test_numbers_lists_and_maps_come_back_as_written(table: Any) -> None:
    principal = "arn:aws:iam::111111111111:role/deploy"
    put(
        table,
        grant(
            principal,
            not_after="2027-06-30T00:00:00Z",
            source_cidrs=["10.0.0.0/8"],
            request_tags=["build-id"],
            roles=[{**ROLE, "max_duration_seconds": 900, "policy_arns": [], "external_id": "ext-1"}],
        ),
    )
    (stored,) = GrantStore(lambda: table, TABLE, 0).for_account("111111111111")
    assert isinstance(stored, Grant)
    assert stored.roles[0].max_duration_seconds == 900 and stored.roles[0].external_id == "ext-1"
    assert [str(c) for c in stored.source_cidrs] == ["10.0.0.0/8"]


def test_a_missing_table_is_unavailable(table: Any) -> None:
    with pytest.raises(ServiceUnavailable):
        GrantStore(lambda: table, "no-such-table", 0).for_account("111111111111")
