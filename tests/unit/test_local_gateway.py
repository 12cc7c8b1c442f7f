"""The local API Gateway's front door (stsvend/local/gateway.py): a request reaches the app, with
API Gateway's identity block, only when it is SigV4-signed for `execute-api` in the stack's region,
now, by a key the front door knows; every other request is a 403 naming why."""

from __future__ import annotations

import datetime
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stsvend.local.gateway import Principal, authenticate, identity_block, principals_from
from stsvend.local.guard import Refusal

REGION = "us-east-1"
URL = "http://127.0.0.1:8001"
JENKINS = Principal("AKIAJENKINSLOCAL0001", "jenkins-secret", "arn:aws:iam::111111111111:user/jenkins",
                    "111111111111", "AIDAJENKINS")
KNOWN = {JENKINS.access_key_id: JENKINS}
BODY = b'{"role_arn": "arn:aws:iam::222222222222:role/deployer"}'


def signed(
    key: str = JENKINS.access_key_id,
    secret: str = JENKINS.secret_access_key,
    token: str | None = None,
    service: str = "execute-api",
    region: str = REGION,
    path: str = "/credentials",
    body: bytes = BODY,
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=URL + path, data=body,
                         headers={"Content-Type": "application/json"})
    auth = SigV4Auth(Credentials(key, secret, token), service, region)
    auth.add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = "127.0.0.1:8001"
    return headers


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_a_request_signed_by_a_known_key_is_its_principal() -> None:
    assert authenticate("POST", "/credentials", signed(), BODY, KNOWN, REGION, now()) == JENKINS


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        (signed(secret="not-the-secret"), BODY, "signature"),
        (signed(), b'{"role_arn": "arn:aws:iam::222222222222:role/admin"}', "signature"),
        (signed(key="AKIAUNKNOWNLOCAL0001"), BODY, "unknown_key"),
        (signed(token="a-session-token"), BODY, "token"),
        (signed(service="sts"), BODY, "signature"),
        (signed(region="eu-west-1"), BODY, "signature"),
        ({"Content-Type": "application/json", "Host": "127.0.0.1:8001"}, BODY, "missing"),
    ],
    ids=["wrong secret", "body changed", "unknown key", "token on a user key", "other service",
         "other region", "unsigned"],
)
def test_anything_else_is_refused(headers: dict[str, str], body: bytes, kind: str) -> None:
    with pytest.raises(Refusal) as refused:
        authenticate("POST", "/credentials", headers, body, KNOWN, REGION, now())

    assert refused.value.kind == kind


def test_a_signature_for_another_route_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        authenticate("POST", "/roles", signed(path="/credentials"), BODY, KNOWN, REGION, now())

    assert refused.value.kind == "signature"


def test_a_signature_older_than_15_minutes_is_refused() -> None:
    headers = signed()
    signed_at = now()

    def at(minutes: int) -> Principal:
        when = signed_at + datetime.timedelta(minutes=minutes)
        return authenticate("POST", "/credentials", headers, BODY, KNOWN, REGION, when)

    with pytest.raises(Refusal, match="15 minutes"):
        at(16)
    assert at(14) == JENKINS


def test_the_app_gets_api_gateways_identity_block() -> None:
    block = identity_block(JENKINS, {"User-Agent": "curl/8.5.0"}, "127.0.0.1")

    assert block == {
        "userArn": JENKINS.arn, "caller": "AIDAJENKINS", "user": "AIDAJENKINS",
        "accountId": "111111111111", "accessKey": JENKINS.access_key_id,
        "sourceIp": "127.0.0.1", "userAgent": "curl/8.5.0",
    }


def test_keys_are_read_from_their_json() -> None:
    text = json.dumps([{"access_key_id": JENKINS.access_key_id, "secret_access_key": "s",
                        "arn": JENKINS.arn, "account_id": "111111111111", "user_id": "AIDAJENKINS"}])

    assert principals_from(text)[JENKINS.access_key_id].arn == JENKINS.arn
