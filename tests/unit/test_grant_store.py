"""The grants table's edge: the DynamoDB attribute codec and item parsing."""

from __future__ import annotations

from chalicelib.grant_store import from_attribute, grant_from_item, to_attribute, to_item
from chalicelib.grants import BrokenGrant
from tests.unit.test_grants import CI_BUILD, POLICY, ROLE, stored


def test_stored_item_round_trips_through_dynamodb_attributes() -> None:
    grant = stored(
        CI_BUILD,
        principal_id="AROAORIGINAL00000001",
        not_after="2027-06-30T00:00:00Z",
        source_cidrs=["10.0.0.0/8"],
        request_tags=["build-id"],
        roles=[
            {
                **ROLE,
                "max_duration_seconds": 900,
                "session_policy": "p",
                "session_policy_document": POLICY,
                "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "external_id": "ext-1",
            }
        ],
    )
    item = to_item({**grant.to_item(), "version": 3})
    assert item["version"] == to_attribute(3) == {"N": "3"}
    assert item["roles"]["L"][0]["M"]["max_duration_seconds"] == {"N": "900"}
    again = grant_from_item(item)
    assert again == grant
    assert from_attribute({"SS": ["a"]}) == ["a"]


def test_unparseable_item_becomes_a_broken_grant() -> None:
    item = {"account_id": {"S": "111111111111"}, "principal": {"S": CI_BUILD}, "roles": {"S": "x"}}
    broken = grant_from_item(item)
    assert isinstance(broken, BrokenGrant)
    assert broken.matches(CI_BUILD)


def test_a_broken_item_names_the_grant_and_the_field() -> None:
    bad_role = {"role_arn": "arn:aws:iam::1:role/x"}
    item = to_item({"account_id": "111111111111", "principal": CI_BUILD, "roles": [bad_role]})
    broken = grant_from_item(item)
    assert isinstance(broken, BrokenGrant)
    assert CI_BUILD in broken.problem and "roles[0].role_arn" in broken.problem
