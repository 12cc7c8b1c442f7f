"""The Chalice app, invoked with real-shaped API Gateway REST proxy events, against a moto server
on loopback (DynamoDB and STS answered over real HTTP through the standard AWS_ENDPOINT_URL)."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

import app as app_module
from chalicelib.aws import AwsClients
from chalicelib.config import Settings
from chalicelib.grant_store import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA, GrantStore, to_item
from chalicelib.identity import IdentityResolver
from chalicelib.service import Stsvend
from tests.conftest import record_output, record_vended
from tests.functional.fake_api import api, env  # noqa: F401 - the fake stsvend API and its environment

TABLE = "stsvend-grants-test"
REGION = "us-east-1"
JENKINS = "arn:aws:sts::111111111111:assumed-role/jenkins-agent/i-0abc123"
JENKINS_ID = "AROAJENKINSAGENT0001"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
READ_ONLY = "arn:aws:iam::111111111111:role/read-only"
SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_api(url: str, path: str, body: bytes = b"") -> bytes:
    # text/plain: as a form post, werkzeug would swallow the body moto reads (reset-auth's count).
    request = urllib.request.Request(
        url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback moto
        return bytes(response.read())


@dataclass
class Invocation:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def api_event(
    method: str,
    path: str,
    body: str | None = None,
    identity: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (v1) proxy event as Lambda receives it behind AWS_IAM auth."""
    headers = {"Content-Type": "application/json", "User-Agent": "pytest", **(headers or {})}
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": path,
            "httpMethod": method,
            "extendedRequestId": "x",
            "requestTime": "28/Nov/2026:19:00:00 +0000",
            "path": f"/api{path}",
            "accountId": "999999999999",
            "protocol": "HTTP/1.1",
            "stage": "api",
            "domainPrefix": "abc",
            "requestTimeEpoch": 1795892400000,
            "requestId": request_id,
            "identity": identity or {},
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def iam_identity(
    arn: str = JENKINS, user_id: str = f"{JENKINS_ID}:i-0abc123", source_ip: str = "10.1.2.3"
) -> dict[str, Any]:
    account = arn.split(":")[4]
    return {
        "cognitoIdentityPoolId": None,
        "accountId": account,
        "cognitoIdentityId": None,
        "caller": user_id,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": "ASIAEXAMPLECALLER",
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": arn,
        "userAgent": "pytest",
        "user": user_id,
    }


class _Context:
    function_name = "stsvend-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:999999999999:function:stsvend-test"
    aws_request_id = "lambda-request"


@pytest.fixture
def serve() -> Iterator[Callable[[Stsvend], None]]:
    """Serve the app with a given service for one test; afterwards it is built from settings again."""
    yield app_module.use_service
    app_module.use_service(None)


@dataclass
class Stack:
    url: str
    ddb: Any
    clients: AwsClients = field(init=False)
    service: Stsvend = field(init=False)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def serve(
        self, grants: GrantStore | None = None, identity: IdentityResolver | None = None
    ) -> Stsvend:
        """Serve requests with a service built from the current environment (with `grants` and
        `identity`, if given), recording every AssumeRole request it sends."""
        settings = Settings.from_env()
        self.clients = AwsClients(settings.region)
        self.service = Stsvend.from_settings(settings, identity, clients=self.clients, grants=grants)
        self.clients.sts().meta.events.register(
            "provide-client-params.sts.AssumeRole",
            lambda params, **_: self.sent.append(dict(params)),
        )
        app_module.use_service(self.service)
        return self.service

    def put_grant(self, grant: dict[str, Any]) -> None:
        item = {"account_id": grant["principal"].split(":")[4], **grant}
        self.ddb.put_item(TableName=TABLE, Item=to_item(item))

    def invoke(
        self,
        method: str,
        path: str,
        body: Any = None,
        identity: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Invocation:
        raw = body if isinstance(body, str) or body is None else json.dumps(body)
        event = api_event(method, path, raw, identity, headers)
        result = app_module.app(event, _Context())
        text = result["body"]
        if result.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        payload = json.loads(text) if text else {}
        record_vended(payload)
        if result["statusCode"] != 200:
            record_output(text)  # error bodies are checked for secrets with the logs
        return Invocation(result["statusCode"], result["headers"], payload)

    def vend(self, body: Any, identity: dict[str, Any] | None = None) -> Invocation:
        return self.invoke("POST", "/credentials", body, identity or iam_identity())


def jenkins_grant(**overrides: Any) -> dict[str, Any]:
    grant: dict[str, Any] = {
        "principal": "arn:aws:iam::111111111111:role/jenkins-agent",
        "description": "Jenkins agents deploy to dev",
        "enabled": True,
        "request_tags": ["build-id", "job-name"],
        "roles": [
            {
                "role_arn": DEPLOYER,
                "max_duration_seconds": 3600,
                "session_policy": "ec2-read-only",
                "session_policy_document": json.dumps(SESSION_POLICY),
                "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "external_id": "stsvend-dev",
            },
            {"role_arn": READ_ONLY, "max_duration_seconds": 1800},
        ],
    }
    grant.update(overrides)
    return grant


def settings_env(moto_url: str, mode: str = "apigateway") -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "AKIASTSVENDSERVICE01",
        "AWS_SECRET_ACCESS_KEY": "service-secret-not-real",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "STSVEND_GRANTS_TABLE": TABLE,
        "STSVEND_IDENTITY_MODE": mode,
        "STSVEND_SERVER_ID": "https://stsvend.example/api",
        "STSVEND_GRANT_CACHE_SECONDS": "10",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@pytest.fixture
def stack(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    moto_api(moto_url, "/moto-api/reset")
    for name, value in settings_env(moto_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        BillingMode="PAY_PER_REQUEST",
    )
    result = Stack(moto_url, ddb)
    result.serve()
    try:
        yield result
    finally:
        app_module.use_service(None)
