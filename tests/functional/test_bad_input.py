"""Bad input, generated and hand-picked, through the Chalice app: always a 4xx with a documented
Code, never a 5xx, never credentials, never a call to STS."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app as app_module
from chalicelib.service import Stsvend
from tests.functional.conftest import _Context, api_event, iam_identity
from tests.functional.fakes import SETTINGS, FakeSts, fake_service

DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
CLIENT_ERRORS = {
    400: {"InvalidRequest", "DurationNotAllowed"},
    401: {"NotAuthenticated"},
    403: {"CallerNotAllowed", "SourceNotAllowed", "RoleNotGranted", "TagNotAllowed"},
    413: {"PayloadTooLarge"},
}
GRANT = {
    "account_id": "111111111111",
    "principal": "arn:aws:iam::111111111111:role/jenkins-agent",
    "request_tags": ["build-id", "job-name"],
    "roles": [{"role_arn": DEPLOYER, "max_duration_seconds": 3600}],
}
# A non-surrogate text: API Gateway hands Lambda valid UTF-8 only.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)


@pytest.fixture
def sts(serve: Callable[[Stsvend], None]) -> FakeSts:
    service, fake = fake_service([GRANT])
    serve(service)
    return fake


def call(body: str | None, headers: dict[str, str] | None = None, identity: Any = None) -> dict[str, Any]:
    event = api_event("POST", "/credentials", body, iam_identity() if identity is None else identity, headers)
    return app_module.app(event, _Context())  # type: ignore[no-any-return]


def assert_rejected(result: dict[str, Any], sts: FakeSts) -> str:
    status = result["statusCode"]
    assert status in CLIENT_ERRORS, result
    body = json.loads(result["body"])
    assert body["Code"] in CLIENT_ERRORS[status]
    assert set(body) == {"Code", "Message", "RequestId"}
    assert sts.calls == []
    return str(body["Code"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {"role_arn": st.one_of(st.just(DEPLOYER), TEXT, json_values)},
    optional={
        "duration_seconds": st.one_of(st.integers(), st.floats(), TEXT, st.booleans(), st.none()),
        "tags": st.one_of(st.dictionaries(TEXT, st.one_of(TEXT, json_values), max_size=60), json_values),
        "session_name": st.one_of(TEXT, json_values),
        "extra": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        TEXT,
        json_values.map(json.dumps),
        near_valid.map(json.dumps),
    )
)
def test_generated_bodies_never_get_a_5xx(sts: FakeSts, body: str) -> None:
    sts.calls.clear()
    result = call(body)
    if result["statusCode"] == 200:
        # Only a request the grant allows gets through, and then exactly one AssumeRole.
        parsed = json.loads(body)
        assert parsed["role_arn"] == DEPLOYER
        assert len(sts.calls) == 1
    else:
        assert_rejected(result, sts)


HAND_PICKED = [
    ("not json", "{role_arn: x}", "InvalidRequest"),
    ("json array", "[]", "InvalidRequest"),
    ("empty body", None, "InvalidRequest"),
    ("role_arn number", {"role_arn": 7}, "InvalidRequest"),
    ("huge role_arn", {"role_arn": DEPLOYER + "x" * 15000}, "InvalidRequest"),
    ("unicode session name", {"role_arn": DEPLOYER, "session_name": "déploiement"}, "InvalidRequest"),
    ("unicode tag ok but not granted", {"role_arn": DEPLOYER, "tags": {"équipe": "bleu"}}, "TagNotAllowed"),
    ("tag with control char", {"role_arn": DEPLOYER, "tags": {"build-id": "a\u0000b"}}, "InvalidRequest"),
    ("aws: tag key", {"role_arn": DEPLOYER, "tags": {"aws:PrincipalTag": "x"}}, "InvalidRequest"),
    ("AWS: tag key", {"role_arn": DEPLOYER, "tags": {"AWS:x": "x"}}, "InvalidRequest"),
    ("stsvend: tag key", {"role_arn": DEPLOYER, "tags": {"stsvend:caller": "x"}}, "TagNotAllowed"),
    ("StsVend: tag key", {"role_arn": DEPLOYER, "tags": {"StsVend:Caller-Account": "1"}}, "TagNotAllowed"),
    ("51 tags", {"role_arn": DEPLOYER, "tags": {f"k{i}": "v" for i in range(51)}}, "InvalidRequest"),
    ("negative duration", {"role_arn": DEPLOYER, "duration_seconds": -900}, "DurationNotAllowed"),
    ("huge duration", {"role_arn": DEPLOYER, "duration_seconds": 10**30}, "DurationNotAllowed"),
    ("float duration", {"role_arn": DEPLOYER, "duration_seconds": 900.5}, "InvalidRequest"),
    ("string duration", {"role_arn": DEPLOYER, "duration_seconds": "900"}, "InvalidRequest"),
    ("NaN duration", '{"role_arn": "%s", "duration_seconds": NaN}' % DEPLOYER, "InvalidRequest"),
    ("aws-cn partition", {"role_arn": "arn:aws-cn:iam::222222222222:role/deployer"}, "InvalidRequest"),
    (
        "aws-us-gov partition",
        {"role_arn": "arn:aws-us-gov:iam::222222222222:role/deployer"},
        "InvalidRequest",
    ),
    ("wildcard role", {"role_arn": "arn:aws:iam::222222222222:role/*"}, "InvalidRequest"),
    ("wildcard account", {"role_arn": "arn:aws:iam::*:role/deployer"}, "InvalidRequest"),
    ("path trick", {"role_arn": "arn:aws:iam::222222222222:role/../deployer"}, "RoleNotGranted"),
    ("path prefix", {"role_arn": "arn:aws:iam::222222222222:role/admin/deployer"}, "RoleNotGranted"),
    ("case trick", {"role_arn": "arn:aws:iam::222222222222:role/Deployer"}, "RoleNotGranted"),
    ("trailing newline", {"role_arn": DEPLOYER + "\n"}, "InvalidRequest"),
    ("over 16 KiB", {"role_arn": DEPLOYER, "pad": "x" * 17000}, "PayloadTooLarge"),
    ("duplicate keys", '{"role_arn": "%s", "role_arn": "%s"}' % (DEPLOYER, DEPLOYER), "InvalidRequest"),
    ("deep nesting", "[" * 5000 + "]" * 5000, "InvalidRequest"),
]


@pytest.mark.parametrize(
    ("body", "code"), [(b, c) for _, b, c in HAND_PICKED], ids=[n for n, _, _ in HAND_PICKED]
)
def test_hand_picked_bodies(sts: FakeSts, body: Any, code: str) -> None:
    raw = body if body is None or isinstance(body, str) else json.dumps(body)
    assert assert_rejected(call(raw), sts) == code


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/xml"}, {"Content-Type": "application/x-www-form-urlencoded"}],
    ids=["xml", "form"],
)
def test_chalice_level_rejections_use_the_error_shape(sts: FakeSts, headers: dict[str, str]) -> None:
    result = call(json.dumps({"role_arn": DEPLOYER}), headers)
    assert assert_rejected(result, sts) == "InvalidRequest"


@pytest.fixture
def proof_sts(serve: Callable[[Stsvend], None]) -> FakeSts:
    proof_settings = dataclasses.replace(SETTINGS, identity_mode="sts-proof", server_ids=("http://127.0.0.1:8000",))
    service, fake = fake_service([GRANT], settings=proof_settings)
    serve(service)
    return fake


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "%%%",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b"{}").decode(),
        base64.b64encode(
            json.dumps({"method": "POST", "url": 1, "headers": [], "body": None}).encode()
        ).decode(),
        "QUFB" * 3000,
        base64.b64encode(b"[" * 5000).decode(),
        base64.b64encode(b'{"a":' * 1200 + b"1" + b"}" * 1200).decode(),
    ],
    ids=[
        "missing",
        "empty",
        "garbled",
        "not-utf8",
        "empty-object",
        "wrong-types",
        "oversized",
        "deeply-nested-list",
        "deeply-nested-object",
    ],
)
def test_bad_identity_headers(proof_sts: FakeSts, header: str | None) -> None:
    headers = {} if header is None else {"X-Stsvend-Identity": header}
    result = call(json.dumps({"role_arn": DEPLOYER}), headers, identity={"sourceIp": "127.0.0.1"})
    assert assert_rejected(result, proof_sts) == "NotAuthenticated"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(TEXT, st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())))
def test_generated_identity_headers_are_not_authenticated(proof_sts: FakeSts, header: str) -> None:
    result = call(
        json.dumps({"role_arn": DEPLOYER}), {"X-Stsvend-Identity": header}, identity={"sourceIp": "1.2.3.4"}
    )
    assert assert_rejected(result, proof_sts) == "NotAuthenticated"
