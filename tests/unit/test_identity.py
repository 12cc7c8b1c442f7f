"""Caller ARNs, normalized to what grants match on (docs/design.md §2)."""

from __future__ import annotations

import pytest

from chalicelib.errors import NotAuthenticated
from chalicelib.identity import caller_from_apigateway, request_binding


@pytest.mark.parametrize(
    ("arn", "principal", "name", "session"),
    [
        (
            "arn:aws:sts::111111111111:assumed-role/jenkins-agent/i-0abc",
            "arn:aws:iam::111111111111:role/jenkins-agent",
            "jenkins-agent",
            "i-0abc",
        ),
        (
            "arn:aws:sts::111111111111:assumed-role/a.b@c=d,e+f_g-h/sess@corp.example",
            "arn:aws:iam::111111111111:role/a.b@c=d,e+f_g-h",
            "a.b@c=d,e+f_g-h",
            "sess@corp.example",
        ),
        ("arn:aws:iam::111111111111:user/alice", "arn:aws:iam::111111111111:user/alice", "alice", None),
        (
            "arn:aws:iam::111111111111:user/division/team/bob",
            "arn:aws:iam::111111111111:user/bob",
            "bob",
            None,
        ),
        ("arn:aws:iam::111111111111:root", "arn:aws:iam::111111111111:root", "root", None),
        (
            "arn:aws-cn:sts::111111111111:assumed-role/builder/s1",
            "arn:aws-cn:iam::111111111111:role/builder",
            "builder",
            "s1",
        ),
        (
            "arn:aws-us-gov:iam::111111111111:user/gov-user",
            "arn:aws-us-gov:iam::111111111111:user/gov-user",
            "gov-user",
            None,
        ),
    ],
)
def test_caller_arns_are_normalized(arn: str, principal: str, name: str, session: str | None) -> None:
    caller = caller_from_apigateway(
        {"userArn": arn, "caller": "AROAEXAMPLE:x", "accountId": "111111111111", "sourceIp": "10.0.0.1"}
    )
    assert caller.arn == arn
    assert caller.principal_arn == principal
    assert caller.name == name
    assert caller.session_name == session
    assert caller.account_id == "111111111111"
    assert caller.unique_id == "AROAEXAMPLE"
    assert caller.source_ip == "10.0.0.1"


@pytest.mark.parametrize(
    "identity",
    [
        None,
        {},
        {"userArn": ""},
        {"userArn": None, "caller": "AIDA"},
        {"userArn": "arn:aws:iam::111111111111:group/admins"},
        {"userArn": "arn:aws:sts::111111111111:assumed-role/only-role"},
        {"userArn": "arn:aws:iam::1111:user/short-account"},
        {"userArn": "arn:aws:iam::111111111111:user/alice", "accountId": "222222222222"},
        {"userArn": "arn:other:iam::111111111111:user/alice"},
        {"userArn": "arn:aws:iam::111111111111:user/ali ce"},
    ],
)
def test_unknown_or_missing_identity_is_not_authenticated(identity: dict[str, str] | None) -> None:
    with pytest.raises(NotAuthenticated):
        caller_from_apigateway(identity)


@pytest.mark.parametrize(
    ("cognito", "pool"),
    [
        ({}, None),
        ({"cognitoIdentityPoolId": None, "cognitoIdentityId": None}, None),
        (
            {"cognitoIdentityPoolId": "us-east-1:pool", "cognitoIdentityId": "us-east-1:id"},
            "us-east-1:pool",
        ),
        ({"cognitoIdentityId": "us-east-1:id"}, "unknown"),
        ({"cognitoAuthenticationType": "unauthenticated"}, "unknown"),
        ({"cognitoAuthenticationProvider": "cognito-idp.example"}, "unknown"),
    ],
    ids=["none", "nulls", "pool-and-id", "id-only", "auth-type", "auth-provider"],
)
def test_cognito_identity_pool_callers_are_marked(cognito: dict[str, str | None], pool: str | None) -> None:
    caller = caller_from_apigateway(
        {"userArn": "arn:aws:sts::111111111111:assumed-role/app-users/s1", "caller": "AROAX:s1", **cognito}
    )
    assert caller.cognito_identity_pool == pool
    assert caller.from_cognito is (pool is not None)


def test_cognito_enhanced_flow_session_name_marks_the_caller() -> None:
    caller = caller_from_apigateway(
        {"userArn": "arn:aws:sts::111111111111:assumed-role/app-users/CognitoIdentityCredentials"}
    )
    assert caller.from_cognito


def test_request_binding_covers_method_route_and_body() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert request_binding("get", "/whoami", b"") == f"GET /whoami {empty}"
    assert request_binding("POST", "/credentials", b"{}") != request_binding("POST", "/credentials", b"{ }")


def test_every_identity_field_keys_the_cached_caller() -> None:
    # Callers are built once per identity (chalicelib.identity.build_caller is cached): a field
    # that differs must never yield another request's caller.
    base = {
        "userArn": "arn:aws:sts::111111111111:assumed-role/ci/s1",
        "caller": "AROAEXAMPLE:s1",
        "accountId": "111111111111",
        "sourceIp": "10.0.0.1",
        "userAgent": "ua/1",
    }
    first = caller_from_apigateway(base)
    assert caller_from_apigateway(dict(base)) is first
    changes = {
        "userArn": "arn:aws:sts::111111111111:assumed-role/ci/s2",
        "caller": "AROAOTHER:s1",
        "sourceIp": "10.0.0.2",
        "userAgent": "ua/2",
        "cognitoIdentityPoolId": "us-east-1:pool",
    }
    for field, value in changes.items():
        other = caller_from_apigateway({**base, field: value})
        assert other is not first
        attribute = {
            "userArn": "arn", "caller": "user_id", "sourceIp": "source_ip", "userAgent": "user_agent",
            "cognitoIdentityPoolId": "cognito_identity_pool",
        }[field]
        assert getattr(other, attribute) == value
    with pytest.raises(NotAuthenticated):
        caller_from_apigateway({**base, "accountId": "222222222222"})
