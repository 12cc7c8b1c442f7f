"""`grants apply` of a plan larger than one DynamoDB transaction, against a moto server over HTTP:
every state the table passes through, and the state any failed transaction leaves, grants each
caller no more than the table before the apply or the table the plan asks for (issue 10.9)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import botocore.session
import pytest

from chalicelib.errors import CallerNotAllowed
from chalicelib.grant_store import grant_from_item
from chalicelib.grants import AnyGrant, authorize_caller, parse_grant
from stsvend.checkout.apply import ApplyResult, apply_changes
from stsvend.checkout.plan import plan_changes
from stsvend.checkout.table import create_table, scan_items
from tests.functional.conftest import REGION, moto_api

TABLE = "stsvend-grants-batches"
ACCOUNT = "111111111111"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/admin"
READ = f"arn:aws:iam::{ACCOUNT}:role/read-only"
SESSION_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}
)


def user(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def grant(name: str, role: str, *, enabled: bool = True) -> dict[str, Any]:
    return {
        "principal": user(name),
        "enabled": enabled,
        "roles": [{"role_arn": role, "session_policy": "p", "session_policy_document": SESSION_POLICY}],
    }


# Before: a pattern `c*` shadowed for carol by her disabled exact grant, ann, and dave.
BEFORE = [
    grant("ann", READ),
    grant("c*", ADMIN),
    grant("carol", READ, enabled=False),
    grant("dave", READ),
]
# After: all of those removed but dave, who changes; the account-wide `*` for ADMIN, bob's exact
# READ grant that narrows it for him, and 100 grants that sort between the two (so `*` and bob land
# in different transactions).
AFTER = [
    grant("dave", ADMIN),
    grant("*", ADMIN),
    *(grant(f"b{n:03}", READ) for n in range(100)),
    grant("bob", READ),
]
PROBES = ["ann", "b050", "bob", "carol", "cx", "dave", "zed"]


def parsed(entries: Sequence[dict[str, Any]]) -> list[Any]:
    return [parse_grant({**e, "account_id": ACCOUNT}) for e in entries]


BEFORE_GRANTS, AFTER_GRANTS = parsed(BEFORE), parsed(AFTER)


def access(grants: Sequence[AnyGrant], name: str) -> str | None:
    """What the server would let this caller have: the deciding grant's roles, or None (denied)."""
    try:
        decided = authorize_caller(grants, user(name), "AIDAEXAMPLE", "127.0.0.1", datetime.now(timezone.utc))
    except CallerNotAllowed:
        return None
    return json.dumps([r.to_item() for r in decided.roles], sort_keys=True)


def unsafe_callers(grants: Sequence[AnyGrant]) -> dict[str, str]:
    """Probe callers whose access is neither denied nor what BEFORE or AFTER gives them."""
    found = {}
    for name in PROBES:
        now = access(grants, name)
        if now is not None and now not in (access(BEFORE_GRANTS, name), access(AFTER_GRANTS, name)):
            found[name] = now
    return found


def seed(moto_url: str, client: Any) -> None:
    """A fresh emulator with the BEFORE table (one transaction)."""
    moto_api(moto_url, "/moto-api/reset")
    create_table(client, TABLE)
    result = apply_changes(client, TABLE, plan_changes(client, TABLE, BEFORE_GRANTS))
    assert result.ok and result.transactions == 1


@pytest.fixture
def dynamodb(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTSVENDADMIN0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "admin-secret-not-real")
    client = botocore.session.get_session().create_client(
        "dynamodb", region_name=REGION, endpoint_url=moto_url
    )
    seed(moto_url, client)
    return client


def table_grants(client: Any) -> list[AnyGrant]:
    return [grant_from_item(item) for item in scan_items(client, TABLE)]


class Recording:
    """The real client; after each transaction the table is read back. With `fail_at`, a concurrent
    writer bumps the first item of that transaction just before it, so DynamoDB cancels it."""

    def __init__(self, client: Any, fail_at: int | None = None, record: bool = True) -> None:
        self.client = client
        self.fail_at = fail_at
        self.record = record
        self.calls = 0
        self.states: list[list[AnyGrant]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            action = kwargs["TransactItems"][0]
            key = next(iter(action.values())).get("Key") or {
                k: v for k, v in action["Put"]["Item"].items() if k in ("account_id", "principal")
            }
            self.client.update_item(
                TableName=TABLE, Key=key, UpdateExpression="SET #v = if_not_exists(#v, :z) + :one",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":z": {"N": "0"}, ":one": {"N": "1"}},
            )
        try:
            return self.client.transact_write_items(**kwargs)
        finally:
            if self.record:
                self.states.append(table_grants(self.client))


def apply_after(
    client: Any, fail_at: int | None = None, record: bool = True
) -> tuple[ApplyResult, Recording]:
    plan = plan_changes(client, TABLE, AFTER_GRANTS)
    assert len(plan.changes) > 100
    recording = Recording(client, fail_at, record)
    return apply_changes(recording, TABLE, plan), recording


def test_the_check_catches_an_addition_in_force_before_the_grant_that_narrows_it() -> None:
    """What applying additions first did: `*` written, bob's narrower grant not yet."""
    half_done = parsed([grant("*", ADMIN), *BEFORE])

    admin = access(parsed([grant("*", ADMIN)]), "bob")
    assert unsafe_callers(half_done) == {"bob": admin, "b050": admin}
    assert unsafe_callers(parsed(BEFORE)) == {} and unsafe_callers(parsed(AFTER)) == {}


def test_every_state_of_a_large_apply_is_within_before_or_after(dynamodb: Any) -> None:
    result, recording = apply_after(dynamodb)

    assert result.ok, result.error
    assert result.transactions == recording.calls == 4  # two steps, each over 100 writes
    for number, state in enumerate(recording.states, 1):
        assert unsafe_callers(state) == {}, f"after transaction {number}"
    final = table_grants(dynamodb)
    assert {name: access(final, name) for name in PROBES} == {
        name: access(AFTER_GRANTS, name) for name in PROBES
    }
    assert plan_changes(dynamodb, TABLE, AFTER_GRANTS).empty


def test_a_failure_in_any_transaction_leaves_nothing_wider_than_before_or_after(
    dynamodb: Any, moto_url: str
) -> None:
    failed_at = []
    for fail_at in range(1, 10):
        if fail_at > 1:
            seed(moto_url, dynamodb)
        result, recording = apply_after(dynamodb, fail_at, record=False)
        if recording.calls < fail_at:  # the apply was over before the failure point
            assert result.ok
            break
        failed_at.append(fail_at)

        assert not result.ok
        assert "changed concurrently" in (result.error or "")
        state = table_grants(dynamodb)
        assert unsafe_callers(state) == {}, f"failed at transaction {fail_at}"
        applied = {c.principal for c in result.applied}
        for change in result.disabled:
            # left denying: disabled (or gone, if the concurrent writer's bump made it unparsable)
            left = next((g for g in state if g.principal == change.principal), None)
            assert left is None or access([left], change.principal.rsplit("/", 1)[1]) is None
        assert not applied & {c.principal for c in result.not_applied}

        if fail_at not in (2, 3):
            continue
        # Applying again (the concurrent edit is now what plan sees) finishes the job.
        retried = apply_changes(dynamodb, TABLE, plan_changes(dynamodb, TABLE, AFTER_GRANTS))
        assert retried.ok, retried.error
        assert plan_changes(dynamodb, TABLE, AFTER_GRANTS).empty
    assert failed_at == [1, 2, 3, 4]  # both transactions of each step
