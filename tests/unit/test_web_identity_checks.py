"""The local stack's AssumeRoleWithWebIdentity checks that need no server: which requests are the
guard's to check (in any place moto would read an action from), the parameters STS accepts, and
the trust policy evaluation (deny by default for anything not evaluated)."""

from __future__ import annotations

from typing import Any

import pytest

from stsvend.local.webidentity import Rejected, is_federation, parameters, trust_allows

PROVIDER = "arn:aws:iam::222222222222:oidc-provider/127.0.0.1:8000"
AUD, SUB = "127.0.0.1:8000:aud", "127.0.0.1:8000:sub"
ROLE = "arn:aws:iam::222222222222:role/long-running"
BODY = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=r&RoleSessionName=s&WebIdentityToken=t"


@pytest.mark.parametrize(
    ("query", "body", "target"),
    [
        ("", BODY, None),
        ("Action=AssumeRoleWithWebIdentity", b"", None),
        ("", b"Action=assumerolewithwebidentity", None),
        ("", b"Action=AssumeRoleWithSAML&RoleArn=r", None),
        ("", b"{}", "AWSSecurityTokenServiceV20110615.AssumeRoleWithWebIdentity"),
        ("Action=GetCallerIdentity", b"Action=AssumeRoleWithWebIdentity", None),
    ],
)
def test_every_place_an_action_can_be_named_is_the_guards_to_check(
    query: str, body: bytes, target: str | None
) -> None:
    assert is_federation(query, body, target)


@pytest.mark.parametrize(
    ("query", "body"),
    [("", b"Action=AssumeRole&Policy=sts%3AAssumeRoleWithWebIdentity"), ("Action=GetCallerIdentity", b"")],
)
def test_other_calls_are_not(query: str, body: bytes) -> None:
    assert not is_federation(query, body, None)


def test_the_parameters_of_a_well_formed_call() -> None:
    assert parameters("", BODY, None)["RoleArn"] == "r"
    assert parameters("", BODY + b"&PolicyArns.member.1.arn=p", None)["PolicyArns.member.1.arn"] == "p"


@pytest.mark.parametrize(
    ("query", "body", "target"),
    [
        ("", BODY + b"&RoleArn=other", None),
        ("RoleArn=x", BODY, None),
        ("", BODY + b"&ProviderId=www.amazon.com", None),
        ("", BODY + b"&Action=AssumeRoleWithWebIdentity", None),
        ("", BODY.replace(b"AssumeRoleWithWebIdentity", b"assumeRoleWithWebIdentity"), None),
        ("", b"Action=AssumeRoleWithSAML", None),
        ("", BODY, "AWSSecurityTokenServiceV20110615.AssumeRoleWithWebIdentity"),
        ("", b"\xff" + BODY, None),
    ],
    ids=[
        "repeated",
        "query-and-body",
        "provider-id",
        "action-twice",
        "other-spelling",
        "saml",
        "target",
        "not-utf8",
    ],
)
def test_malformed_calls_are_refused(query: str, body: bytes, target: str | None) -> None:
    with pytest.raises(Rejected):
        parameters(query, body, target)


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(
    condition: dict[str, Any], actions: Any = "sts:AssumeRoleWithWebIdentity", **extra: Any
) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": actions,
        "Condition": condition,
        **extra,
    }


CONTEXT = {AUD: ["stsvend"], SUB: [f"{ROLE}|arn:aws:iam::111111111111:user/sample-app"]}
ALL = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"]


def test_a_statement_whose_conditions_hold_allows() -> None:
    policy = _policy(_allow({"StringEquals": {AUD: "stsvend", SUB: CONTEXT[SUB][0]}}, ALL))
    assert trust_allows(policy, ALL, PROVIDER, CONTEXT) is None
    like = _policy(_allow({"StringEquals": {AUD: "stsvend"}, "StringLike": {SUB: f"{ROLE}|*"}}, "sts:*"))
    assert trust_allows(like, ALL, PROVIDER, CONTEXT) is None


@pytest.mark.parametrize(
    "policy",
    [
        _policy(_allow({"StringEquals": {AUD: "stsvend", SUB: f"{ROLE}|someone-else"}})),
        _policy(_allow({"StringEquals": {AUD: "other"}})),
        _policy(_allow({"StringEquals": {AUD: "stsvend"}}), {**_allow({}), "Effect": "Deny"}),
        _policy(_allow({"NumericEquals": {AUD: "1"}})),
        _policy(_allow({"StringEquals": {"sts:SomethingElse": "x"}})),
        _policy({**_allow({}), "Principal": {"Federated": "arn:aws:iam::222222222222:oidc-provider/other"}}),
        _policy({**_allow({}), "Principal": {"AWS": "*"}}),
        _policy({**_allow({}), "NotAction": "sts:AssumeRole", "Action": "sts:*"}),
        {"Version": "2012-10-17"},
    ],
    ids=["sub", "aud", "deny", "operator", "absent-key", "provider", "aws-principal", "not-action", "empty"],
)
def test_anything_else_refuses(policy: dict[str, Any]) -> None:
    assert (
        trust_allows(policy, ["sts:AssumeRoleWithWebIdentity"], PROVIDER, CONTEXT)
        == "sts:AssumeRoleWithWebIdentity"
    )


def test_tags_and_source_identity_need_their_own_actions() -> None:
    policy = _policy(_allow({"StringEquals": {AUD: "stsvend"}}))
    assert trust_allows(policy, ALL, PROVIDER, CONTEXT) == "sts:TagSession"
