"""Behind the local emulator's guard, moto's IAM check runs on every request: a read-only session
stsvend vended and a plain emulator key with limited rights cannot do against IAM, STS, EC2 or
DynamoDB what their policies do not allow, however the request is shaped (signed, unsigned, with
moto's "public operation" header, with DynamoDB's older API version, presigned), nor reach a service
or path moto answers without checking; and the stack is unchanged afterwards."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from stsvend.local.seed import DEPLOYER_ROLE, INFRA_ACCOUNT, READ_ONLY_ROLE
from stsvend.local.stack import LocalState
from tests.conftest import record_vended
from tests.e2e.conftest import Api, own_keys

PUBLIC_OPERATION = "AWSCognitoIdentityService.GetId"
ESCALATED = f"arn:aws:iam::{INFRA_ACCOUNT}:user/escalated"
# What AWS answers a signed request the caller may not make, per protocol (moto's DynamoDB denial
# is a 403 with an XML body, which botocore reports as code 403).
DENIALS = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}
CALLERS = ("read-only session", "sample-app key")


@pytest.fixture(scope="module")
def keys(api: Api, state: LocalState) -> dict[str, dict[str, str]]:
    vended = api.credentials("sample-app", READ_ONLY_ROLE)
    assert vended.status == 200, vended.body
    return {"read-only session": vended.body, "sample-app key": own_keys(state, "sample-app")}


def client(state: LocalState, service: str, keys: dict[str, str] | None, target: str | None = None) -> Any:
    """A client as `keys` (None: unsigned); `target` replaces or adds X-Amz-Target before signing."""
    config = Config(retries={"max_attempts": 1}, signature_version=UNSIGNED if keys is None else None)
    made = boto3.client(
        service,
        region_name=state.region,
        endpoint_url=state.emulator_url,
        aws_access_key_id=None if keys is None else keys["AccessKeyId"],
        aws_secret_access_key=None if keys is None else keys["SecretAccessKey"],
        aws_session_token=None if keys is None else keys.get("SessionToken"),
        config=config,
    )
    if target is not None:

        def set_target(request: Any, **_: Any) -> None:
            current = request.headers.get("X-Amz-Target") or b""
            operation = (current.decode() if isinstance(current, bytes) else current).rpartition(".")[2]
            del request.headers["X-Amz-Target"]
            request.headers["X-Amz-Target"] = target.replace("{operation}", operation)

        made.meta.events.register("before-sign", set_target)
    return made


def admin(state: LocalState, service: str) -> Any:
    return client(state, service, own_keys(state, "admin"))


def grant_item() -> dict[str, Any]:
    return {
        "account_id": {"S": INFRA_ACCOUNT},
        "principal": {"S": ESCALATED},
        "roles": {"S": json.dumps([{"role_arn": DEPLOYER_ROLE}])},
    }


# service -> (the privileged call, the header that would have moto skip its check for this service)
ATTEMPTS: dict[str, tuple[Callable[[Any, LocalState], Any], str]] = {
    "iam": (lambda c, s: c.create_access_key(UserName="admin"), PUBLIC_OPERATION),
    "sts": (lambda c, s: c.assume_role(RoleArn=DEPLOYER_ROLE, RoleSessionName="escalate"), PUBLIC_OPERATION),
    "ec2": (
        lambda c, s: c.terminate_instances(InstanceIds=[s.instances[INFRA_ACCOUNT][0]]),
        PUBLIC_OPERATION,
    ),
    # moto answers DynamoDB's 2011-12-05 API with a handler that checks nothing.
    "dynamodb": (
        lambda c, s: c.put_item(TableName=s.grants_table, Item=grant_item()),
        "DynamoDB_20111205.{operation}",
    ),
}


def refusal(call: Callable[[], Any]) -> tuple[int, str]:
    try:
        answer = call()
    except ClientError as error:
        return error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]
    record_vended(answer.get("Credentials", {}))
    record_vended(answer.get("AccessKey", {}))
    return answer["ResponseMetadata"]["HTTPStatusCode"], "answered"


def assert_unchanged(state: LocalState, admin_keys_before: list[str]) -> None:
    keys = admin(state, "iam").list_access_keys(UserName="admin")["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in keys) == admin_keys_before
    instance = state.instances[INFRA_ACCOUNT][0]
    reservations = admin(state, "ec2").describe_instances(InstanceIds=[instance])["Reservations"]
    assert reservations[0]["Instances"][0]["State"]["Name"] == "running"
    item = admin(state, "dynamodb").get_item(
        TableName=state.grants_table, Key={"account_id": {"S": INFRA_ACCOUNT}, "principal": {"S": ESCALATED}}
    )
    assert "Item" not in item


@pytest.fixture(scope="module")
def admin_keys_before(state: LocalState) -> list[str]:
    keys = admin(state, "iam").list_access_keys(UserName="admin")["AccessKeyMetadata"]
    return sorted(k["AccessKeyId"] for k in keys)


@pytest.mark.parametrize("service", sorted(ATTEMPTS))
@pytest.mark.parametrize("caller", CALLERS)
def test_a_privileged_call_is_refused_signed_or_unsigned_with_or_without_the_bypass_header(
    state: LocalState,
    keys: dict[str, dict[str, str]],
    admin_keys_before: list[str],
    service: str,
    caller: str,
) -> None:
    attempt, bypass = ATTEMPTS[service]
    for target in (None, bypass):
        signed = refusal(lambda: attempt(client(state, service, keys[caller], target=target), state))
        assert signed[0] == 403 and signed[1] in DENIALS, (target, signed)
        # Unsigned: refused before moto by the guard's authentication (as before this class).
        assert refusal(lambda: attempt(client(state, service, None, target=target), state))[0] == 403
    assert_unchanged(state, admin_keys_before)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback emulator
            return response.status, bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


PRESIGNED: dict[str, tuple[str, Callable[[LocalState], dict[str, Any]]]] = {
    "iam": ("create_access_key", lambda s: {"UserName": "admin"}),
    "sts": ("assume_role", lambda s: {"RoleArn": DEPLOYER_ROLE, "RoleSessionName": "escalate"}),
    "ec2": ("terminate_instances", lambda s: {"InstanceIds": [s.instances[INFRA_ACCOUNT][0]]}),
}


@pytest.mark.parametrize("service", sorted(PRESIGNED))
@pytest.mark.parametrize("caller", CALLERS)
def test_a_presigned_privileged_call_is_refused_by_moto_itself(
    state: LocalState,
    keys: dict[str, dict[str, str]],
    admin_keys_before: list[str],
    service: str,
    caller: str,
) -> None:
    operation, params = PRESIGNED[service]
    url = client(state, service, keys[caller]).generate_presigned_url(
        operation, Params=params(state), ExpiresIn=60, HttpMethod="GET"
    )
    status, body = fetch(url)
    assert status == 403, body
    assert b"<Code>AccessDenied</Code>" in body or b"<Code>UnauthorizedOperation</Code>" in body, body
    assert_unchanged(state, admin_keys_before)


def test_presigned_calls_a_key_may_make_are_answered_as_that_key(
    state: LocalState, keys: dict[str, dict[str, str]]
) -> None:
    session = keys["read-only session"]
    url = client(state, "sts", session).generate_presigned_url("get_caller_identity", HttpMethod="GET")
    status, body = fetch(url)
    assert status == 200, body
    assert b":assumed-role/read-only/" in body
    url = client(state, "ec2", session).generate_presigned_url("describe_instances", HttpMethod="GET")
    status, body = fetch(url)
    assert (status, state.instances[INFRA_ACCOUNT][0].encode() in body) == (200, True), body
    url = admin(state, "iam").generate_presigned_url("list_users", HttpMethod="GET")
    status, body = fetch(url)
    assert (status, b"<UserName>stsvend-service</UserName>" in body) == (200, True), body


def signed_request(
    state: LocalState, keys: dict[str, str], service: str, method: str, path: str, body: bytes = b""
) -> tuple[int, bytes]:
    """A request to the emulator signed with `keys` for `service` (botocore's signer)."""
    request = AWSRequest(method=method, url=state.emulator_url + path, data=body)
    credentials = Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys.get("SessionToken"))
    SigV4Auth(credentials, service, state.region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(  # noqa: S310 - loopback emulator
        prepared.url, data=body or None, method=method, headers=dict(prepared.headers.items())
    )
    try:
        with urllib.request.urlopen(http, timeout=10) as response:  # noqa: S310
            return response.status, bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


@pytest.mark.parametrize("caller", CALLERS)
def test_a_service_moto_answers_without_checking_is_refused(
    state: LocalState, keys: dict[str, dict[str, str]], caller: str
) -> None:
    es = client(state, "es", keys[caller])
    status, code = refusal(lambda: es.create_elasticsearch_domain(DomainName="escalated"))
    assert (status, code) == (403, "AccessDeniedException")
    # Nor for the admin: the emulator serves only the services whose every route moto checks.
    assert refusal(lambda: admin(state, "es").list_domain_names())[0] == 403


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("ec2", "/latest/meta-data/iam/security-credentials/"),
        ("s3", "/latest/api/token"),
        ("sns", "/SimpleNotificationService-0000.pem"),
    ],
)
def test_a_path_moto_answers_without_checking_is_refused(
    state: LocalState, keys: dict[str, dict[str, str]], service: str, path: str
) -> None:
    for caller in CALLERS:
        method = "PUT" if path.endswith("token") else "GET"
        status, body = signed_request(state, keys[caller], service, method, path)
        assert status == 403, body


@pytest.mark.parametrize("caller", CALLERS)
def test_dynamodbs_older_api_moto_answers_unchecked_is_refused(
    state: LocalState, keys: dict[str, dict[str, str]], caller: str
) -> None:
    old = client(state, "dynamodb", keys[caller], target="DynamoDB_20111205.{operation}")
    create = {
        "TableName": "escalated",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    }
    assert refusal(lambda: old.create_table(**create)) == (403, "AccessDeniedException")
    assert refusal(old.list_tables) == (403, "AccessDeniedException")


def test_the_limited_key_and_the_session_still_make_the_calls_they_may(
    state: LocalState, keys: dict[str, dict[str, str]]
) -> None:
    for caller in CALLERS:
        assert client(state, "sts", keys[caller]).get_caller_identity()["Account"] == INFRA_ACCOUNT
    listed = client(state, "ec2", keys["read-only session"]).describe_instances()["Reservations"]
    assert listed
    # The session's expiry is in the future (the vended session is a real one, not a stand-in).
    expiration = keys["read-only session"]["Expiration"]
    assert datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00")) > datetime.datetime.now(
        datetime.UTC
    )


SANDBOX_ROLE = "review-sandbox"
LIMITED_USER = "limited-to-sandbox"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@pytest.fixture
def sandbox_key(state: LocalState) -> Any:
    """A key whose only right is to write inline policies of one role (`SANDBOX_ROLE`)."""
    iam = admin(state, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=SANDBOX_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    sandbox_arn = f"arn:aws:iam::{INFRA_ACCOUNT}:role/{SANDBOX_ROLE}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": sandbox_arn}],
    }
    iam.create_user(UserName=LIMITED_USER)
    iam.put_user_policy(UserName=LIMITED_USER, PolicyName="sandbox-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=LIMITED_USER)["AccessKey"]
    yield {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
    iam.delete_access_key(UserName=LIMITED_USER, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=LIMITED_USER, PolicyName="sandbox-only")
    iam.delete_user(UserName=LIMITED_USER)
    for name in iam.list_role_policies(RoleName=SANDBOX_ROLE)["PolicyNames"]:
        iam.delete_role_policy(RoleName=SANDBOX_ROLE, PolicyName=name)
    iam.delete_role(RoleName=SANDBOX_ROLE)
    escalated = iam.list_role_policies(RoleName="read-only")["PolicyNames"]
    for name in set(escalated) - {"read-only"}:  # undo a successful escalation for the next tests
        iam.delete_role_policy(RoleName="read-only", PolicyName=name)


def form_request(
    state: LocalState, keys: dict[str, str], service: str, query: str, form: str
) -> tuple[int, bytes]:
    """A query-protocol request with parameters in both the URL's query and the form body, signed
    with `keys` (botocore's signer signs both)."""
    url = f"{state.emulator_url}/?{query}" if query else state.emulator_url + "/"
    body = form.encode()
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    credentials = Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys.get("SessionToken"))
    SigV4Auth(credentials, service, state.region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(  # noqa: S310 - loopback emulator
        prepared.url, data=body, method="POST", headers=dict(prepared.headers.items())
    )
    try:
        with urllib.request.urlopen(http, timeout=10) as response:  # noqa: S310
            return response.status, bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


def test_a_parameter_in_both_the_query_and_the_body_cannot_aim_an_allowed_call_elsewhere(
    state: LocalState, sandbox_key: dict[str, str]
) -> None:
    """moto authorizes the resource named in a form body and then acts on the one named in the URL's
    query: a key that may write only the sandbox role's policies must not write read-only's."""
    form = urllib.parse.urlencode(
        {
            "Action": "PutRolePolicy",
            "Version": "2010-05-08",
            "RoleName": SANDBOX_ROLE,
            "PolicyName": "escalated",
            "PolicyDocument": ALLOW_ALL,
        }
    )
    status, body = form_request(state, sandbox_key, "iam", "RoleName=read-only", form)
    assert status == 403, body
    assert admin(state, "iam").list_role_policies(RoleName="read-only")["PolicyNames"] == ["read-only"]
    # The key still does what it may, with its parameters in one place.
    status, body = form_request(state, sandbox_key, "iam", "", form)
    assert status == 200, body
    names = admin(state, "iam").list_role_policies(RoleName=SANDBOX_ROLE)["PolicyNames"]
    assert names == ["escalated"]


def test_s3_which_moto_checks_as_another_action_is_not_served(
    state: LocalState, keys: dict[str, dict[str, str]]
) -> None:
    """moto's S3 checks an action from a table of the query's subresources and runs another: a key
    allowed only s3:PutBucketAcl set a bucket's policy with `PUT /bucket?policy&acl`. Nothing of
    stsvend calls S3, so the emulator serves none of it, to any key."""
    policy = json.dumps({"Version": "2012-10-17", "Statement": []}).encode()
    for caller in (*CALLERS, "admin"):
        keys_ = own_keys(state, "admin") if caller == "admin" else keys[caller]
        request = AWSRequest(
            method="PUT", url=state.emulator_url + "/stsvend-shared?policy=&acl=", data=policy
        )
        S3SigV4Auth(
            Credentials(keys_["AccessKeyId"], keys_["SecretAccessKey"], keys_.get("SessionToken")),
            "s3",
            state.region,
        ).add_auth(request)
        prepared = request.prepare()
        http = urllib.request.Request(  # noqa: S310 - loopback emulator
            prepared.url, data=policy, method="PUT", headers=dict(prepared.headers.items())
        )
        try:
            with urllib.request.urlopen(http, timeout=10) as response:  # noqa: S310
                status, body = response.status, bytes(response.read())
        except urllib.error.HTTPError as error:
            status, body = error.code, bytes(error.read())
        assert (status, b"<Code>AccessDenied</Code>" in body) == (403, True), (caller, body)
    assert refusal(lambda: admin(state, "s3").list_buckets()) == (403, "AccessDenied")
