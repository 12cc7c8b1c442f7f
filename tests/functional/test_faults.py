"""Faults in DynamoDB and STS: each gets its documented answer and no credentials, and the service
recovers by itself when they pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.aws import AwsClients
from chalicelib.grant_store import GrantStore
from tests.functional.conftest import DEPLOYER, REGION, TABLE, Stack, jenkins_grant
from tests.functional.faults import DDB_THROTTLE, STS_THROTTLE, FaultProxy


@pytest.fixture
def proxy(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Every AWS call of the service goes through the proxy."""
    fault_proxy = FaultProxy(stack.url).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
    stack.serve()
    stack.put_grant(jenkins_grant())
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


def test_sts_throttling_within_retries_still_vends(stack: Stack, proxy: FaultProxy) -> None:
    proxy.fail("AssumeRole", STS_THROTTLE, times=2)
    answer = stack.vend({"role_arn": DEPLOYER})
    assert answer.status == 200, answer.body
    assert proxy.seen.count("AssumeRole") == 3


def test_sts_throttling_that_persists_is_unavailable(stack: Stack, proxy: FaultProxy) -> None:
    proxy.fail("AssumeRole", STS_THROTTLE, times=3)
    answer = stack.vend({"role_arn": DEPLOYER})
    assert answer.status == 503
    assert answer.body["Code"] == "ServiceUnavailable"
    assert answer.headers["Retry-After"]
    assert "AccessKeyId" not in answer.body


def test_dynamodb_throttling_that_persists_is_unavailable(stack: Stack, proxy: FaultProxy) -> None:
    proxy.fail("Query", DDB_THROTTLE, times=3)
    answer = stack.vend({"role_arn": DEPLOYER})
    assert answer.status == 503
    assert answer.body["Code"] == "ServiceUnavailable"
    assert proxy.seen.count("AssumeRole") == 0


def test_dynamodb_throttling_within_retries_still_vends(stack: Stack, proxy: FaultProxy) -> None:
    proxy.fail("Query", DDB_THROTTLE, times=1)
    assert stack.vend({"role_arn": DEPLOYER}).status == 200


def test_aws_endpoint_gone_then_back_recovers_without_restart(stack: Stack, proxy: FaultProxy) -> None:
    assert stack.vend({"role_arn": DEPLOYER}).status == 200
    proxy.stop()
    down = stack.vend({"role_arn": DEPLOYER})
    assert down.status == 503
    assert "AccessKeyId" not in down.body
    proxy.start()  # same port
    assert stack.vend({"role_arn": DEPLOYER}).status == 200


def test_sts_unreachable_is_unavailable(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.put_grant(jenkins_grant())
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    stack.serve()
    answer = stack.vend({"role_arn": DEPLOYER})
    assert answer.status == 503
    assert answer.body["Code"] == "ServiceUnavailable"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("change", ["removed", "disabled"])
def test_grant_change_takes_effect_within_the_cache_period(stack: Stack, change: str) -> None:
    stack.put_grant(jenkins_grant())
    clock = FakeClock()
    clients = AwsClients(REGION)
    stack.serve(grants=GrantStore(clients.dynamodb, TABLE, 10, clock=clock))
    assert stack.vend({"role_arn": DEPLOYER}).status == 200

    if change == "removed":
        stack.ddb.delete_item(
            TableName=TABLE,
            Key={
                "account_id": {"S": "111111111111"},
                "principal": {"S": "arn:aws:iam::111111111111:role/jenkins-agent"},
            },
        )
    else:
        stack.put_grant(jenkins_grant(enabled=False))
    clock.now += 9.9
    assert stack.vend({"role_arn": DEPLOYER}).status == 200  # still cached: at most 10 s stale
    clock.now += 0.2
    answer = stack.vend({"role_arn": DEPLOYER})
    assert answer.status == 403
    assert answer.body["Code"] == "CallerNotAllowed"
