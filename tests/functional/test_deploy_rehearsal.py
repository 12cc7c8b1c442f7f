"""The guide's `chalice deploy` path (docs/deploying.md), rehearsed against a moto server as a new user
runs it: from a copy of the checkout, with only `AWS_REGION` set (no AWS_DEFAULT_REGION, no profile
region), `stsvend bootstrap`, then `stsvend deploy`, which runs the real `chalice deploy`. Then what
was created is read back: the service role has the name `stsvend deploy-info` prints, every method
requires AWS_IAM, the log group the function writes to keeps its logs for the stage's retention,
the API stage traces, throttles and writes a JSON access log without a secret-carrying header, a
redeploy keeps the URL, and a checkout without Chalice's state is refused before anything is made.

The emulator (tests/deploy_emulator.py) fills one gap of moto's, in its own process: the import of
Chalice's Swagger 2.0 document. Nothing deployed is changed to suit it."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "eu-west-3"  # not the SDK's default, not the test session's
STAGE = "prod"
DEPLOYER_KEY = "AKIADEPLOYER0000001"
TEST_KEY = "AKIATESTHARNESS0001"


@dataclass
class Rehearsal:
    url: str
    checkout: Path
    env: dict[str, str]
    recording: Path

    def stsvend(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "stsvend"), *args], cwd=self.checkout, env=self.env, capture_output=True, text=True,
            timeout=600,
        )

    def client(self, service: str) -> Any:
        """A client of the test's own (its key is not the deployer's: its calls are not the deploy's)."""
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=TEST_KEY, aws_secret_access_key="testing")

    def state(self) -> dict[str, dict[str, Any]]:
        path = self.checkout / ".chalice" / "deployed" / f"{STAGE}.json"
        return {r["name"]: r for r in json.loads(path.read_text())["resources"]}

    def info(self) -> dict[str, Any]:
        done = self.stsvend("deploy-info", "--stage", STAGE, "--format", "json")
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer


def _copy_checkout(target: Path) -> None:
    """What a clone holds (tracked and new files, nothing git ignores: no vendor/, no state)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@contextmanager
def emulator(env: dict[str, str] | None = None) -> Iterator[str]:
    """The rehearsal's AWS (tests/deploy_emulator.py) in a process of its own: its URL."""
    command = [sys.executable, "-c", "from tests.deploy_emulator import main; main()"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def deployer_env(url: str, home: Path) -> dict[str, str]:
    """A deployer's environment as the guide starts it: `AWS_REGION` only, a profile without a region."""
    (home / "config").write_text("[default]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env.update(
        AWS_REGION=REGION, AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID=DEPLOYER_KEY,
        AWS_SECRET_ACCESS_KEY="testing", AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
    )
    return env


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    recording = tmp_path_factory.mktemp("recording") / "requests.jsonl"
    emulator_env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    with emulator(emulator_env) as url:
        checkout = tmp_path_factory.mktemp("checkout")
        _copy_checkout(checkout)
        env = deployer_env(url, tmp_path_factory.mktemp("home"))
        yield Rehearsal(url, checkout, env, recording)


@pytest.fixture(scope="module")
def deployed(rehearsal: Rehearsal) -> Rehearsal:
    """The guide's steps, in order."""
    boot = rehearsal.stsvend("bootstrap", "--stage", STAGE)
    assert boot.returncode == 0, boot.stderr
    assert "service role, which target roles trust: stsvend-prod-api_handler" in boot.stdout
    # Before the first deploy: without API Gateway's CloudWatch Logs role the access log cannot be
    # written, and the deploy is refused before anything is created.
    refused = rehearsal.stsvend("deploy", "--stage", STAGE)
    assert refused.returncode == 1 and "CloudWatch Logs role" in refused.stderr, refused.stderr
    assert rehearsal.client("lambda").list_functions()["Functions"] == []
    rehearsal.client("apigateway").update_account(patchOperations=[{
        "op": "replace", "path": "/cloudwatchRoleArn", "value": "arn:aws:iam::123456789012:role/apigw-logs",
    }])
    done = rehearsal.stsvend("deploy", "--stage", STAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    return rehearsal


def test_bootstrap_uses_the_region_of_aws_region(deployed: Rehearsal) -> None:
    tables = deployed.client("dynamodb").list_tables()["TableNames"]
    assert "stsvend-grants-prod" in tables


def test_the_service_role_is_the_one_deploy_info_names(deployed: Rehearsal) -> None:
    info = deployed.info()
    assert info["service_role_name"] == "stsvend-prod-api_handler"
    role = deployed.client("iam").get_role(RoleName=info["service_role_name"])["Role"]
    assert deployed.state()["api_handler_role"]["role_arn"] == role["Arn"] == info["service_role_arn"]
    function = deployed.client("lambda").get_function(FunctionName=info["function_name"])["Configuration"]
    assert function["Role"] == role["Arn"]


def test_every_method_requires_aws_iam(deployed: Rehearsal) -> None:
    apigateway = deployed.client("apigateway")
    api_id = deployed.state()["rest_api"]["rest_api_id"]
    methods = [
        (resource["path"], verb, apigateway.get_method(restApiId=api_id, resourceId=resource["id"],
                                                       httpMethod=verb)["authorizationType"])
        for resource in apigateway.get_resources(restApiId=api_id, limit=500)["items"]
        for verb in resource.get("resourceMethods", {})
    ]
    # Unsigned by design, and only these: the OIDC route (the function verifies the CI token) and
    # the issuer's public documents (docs/threat-model.md §7, §8).
    unsigned = {("/oidc/credentials", "POST"), ("/.well-known/openid-configuration", "GET"),
                ("/.well-known/jwks.json", "GET")}
    signed = [(path, verb, auth) for path, verb, auth in methods if (path, verb) not in unsigned]
    assert len(signed) >= 3, methods
    assert {auth for _, _, auth in signed} == {"AWS_IAM"}, methods
    assert {(path, verb) for path, verb, _ in methods} >= unsigned


def test_the_functions_log_group_keeps_the_stages_retention(deployed: Rehearsal) -> None:
    info = deployed.info()
    function = deployed.client("lambda").get_function(FunctionName=info["function_name"])["Configuration"]
    # Lambda's default: /aws/lambda/<function name>, unless the function names another group.
    writes_to = function.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{function['FunctionName']}"
    assert writes_to == info["log_group"] == "/aws/lambda/stsvend-prod"
    groups = deployed.client("logs").describe_log_groups(logGroupNamePrefix=writes_to)["logGroups"]
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert retention[writes_to] == config["stages"][STAGE]["log_retention_in_days"] == 400


def assert_json_access_log(stage: dict[str, Any], group: str) -> None:
    """The stage writes its access log to `group`, one JSON object a request, of $context values only
    (no header: the Authorization and X-Amz-Security-Token headers carry the secrets)."""
    access = stage["accessLogSettings"]
    assert access["destinationArn"].endswith(f":log-group:{group}")
    fields = json.loads(access["format"])
    for wanted in ("requestId", "caller", "userArn", "status", "responseLatency", "errorType"):
        assert wanted in fields
    for value in fields.values():
        assert value.startswith("$context.") and "header" not in value.lower() and "$input" not in value


def test_the_api_stage_traces_throttles_and_writes_a_json_access_log(deployed: Rehearsal) -> None:
    info = deployed.info()
    api_id = deployed.state()["rest_api"]["rest_api_id"]
    stage = deployed.client("apigateway").get_stage(restApiId=api_id, stageName=info["api_stage"])
    assert stage["tracingEnabled"] is True
    settings = json.loads((ROOT / "deploy" / "stages.json").read_text())["stages"][STAGE]
    throttling = stage["methodSettings"]["*/*"]
    assert throttling["throttlingRateLimit"] == settings["throttling_rate_limit"]
    assert throttling["throttlingBurstLimit"] == settings["throttling_burst_limit"]
    assert_json_access_log(stage, info["access_log_group"])
    groups = deployed.client("logs").describe_log_groups(logGroupNamePrefix=info["access_log_group"])
    assert [g.get("retentionInDays") for g in groups["logGroups"]] == [400]
    filters = deployed.client("logs").describe_metric_filters(logGroupName=info["access_log_group"])
    [iam_refused] = filters["metricFilters"]
    assert iam_refused["metricTransformations"][0]["metricName"] == "IamRefused"
    assert "ACCESS_DENIED" in iam_refused["filterPattern"]


def test_a_redeploy_keeps_the_api_and_adds_a_web_acl_and_a_checkout_without_state_is_refused(
    deployed: Rehearsal,
) -> None:
    apigateway = deployed.client("apigateway")
    api_id = deployed.state()["rest_api"]["rest_api_id"]
    wafv2 = deployed.client("wafv2")
    acl = wafv2.create_web_acl(
        Name="stsvend-edge", Scope="REGIONAL", DefaultAction={"Allow": {}}, Rules=[],
        VisibilityConfig={
            "SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": "stsvend-edge"
        },
    )["Summary"]["ARN"]
    settings_path = deployed.checkout / "deploy" / "stages.json"
    settings = json.loads(settings_path.read_text())
    settings["stages"][STAGE]["waf_web_acl_arn"] = acl
    settings_path.write_text(json.dumps(settings))
    again = deployed.stsvend("deploy", "--stage", STAGE)
    assert again.returncode == 0, again.stderr
    assert deployed.state()["rest_api"]["rest_api_id"] == api_id
    stage_arn = f"arn:aws:apigateway:{REGION}::/restapis/{api_id}/stages/api"
    assert wafv2.get_web_acl_for_resource(ResourceArn=stage_arn)["WebACL"]["ARN"] == acl

    state = deployed.checkout / ".chalice" / "deployed" / f"{STAGE}.json"
    kept = state.read_text()
    state.unlink()
    try:
        refused = deployed.stsvend("deploy", "--stage", STAGE)
    finally:
        state.write_text(kept)
    assert refused.returncode == 1
    assert f"REST API {api_id}" in refused.stderr and "DeployRefused" in refused.stderr
    assert [a["id"] for a in apigateway.get_rest_apis()["items"]] == [api_id]


def test_each_deploy_is_a_version_the_api_calls_through_an_alias_that_rolls_back_and_forward(
    deployed: Rehearsal,
) -> None:
    lam = deployed.client("lambda")
    apigateway = deployed.client("apigateway")
    api_id = deployed.state()["rest_api"]["rest_api_id"]
    serving = int(lam.get_alias(FunctionName="stsvend-prod", Name="live")["FunctionVersion"])
    assert serving >= 2  # the first deploy and the redeploy each published one
    alias_arn = lam.get_alias(FunctionName="stsvend-prod", Name="live")["AliasArn"]
    resources = apigateway.get_resources(restApiId=api_id, limit=500)["items"]
    uris = {
        apigateway.get_integration(restApiId=api_id, resourceId=r["id"], httpMethod=m)["uri"]
        for r in resources for m in r.get("resourceMethods", {})
    }
    assert uris == {f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{alias_arn}/invocations"}
    policy = json.loads(lam.get_policy(FunctionName="stsvend-prod", Qualifier="live")["Policy"])
    assert any(s["Principal"] == {"Service": "apigateway.amazonaws.com"} for s in policy["Statement"])

    back = deployed.stsvend("rollback", "--stage", STAGE)
    assert back.returncode == 0, back.stderr
    assert int(lam.get_alias(FunctionName="stsvend-prod", Name="live")["FunctionVersion"]) == serving - 1
    forward = deployed.stsvend("rollback", "--stage", STAGE, "--to-version", str(serving))
    assert forward.returncode == 0, forward.stderr
    assert int(lam.get_alias(FunctionName="stsvend-prod", Name="live")["FunctionVersion"]) == serving
    for bad in ("0", "x", "1;2", str(serving + 50)):
        refused = deployed.stsvend("rollback", "--stage", STAGE, "--to-version", bad)
        assert refused.returncode == 2 and "InvalidArgument" in refused.stderr, refused.stderr
    assert int(lam.get_alias(FunctionName="stsvend-prod", Name="live")["FunctionVersion"]) == serving


# --- the deployer's policy covers what the deploy really called ---------------------------------------


def _lambda_operations() -> list[tuple[str, re.Pattern[str], str]]:
    model = botocore.session.get_session().get_service_model("lambda")
    operations = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?")[0]
        pattern = re.sub(r"\\\{[A-Za-z]+\\\+\\\}", ".+", re.escape(path))
        pattern = re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", pattern)
        operations.append((http["method"], re.compile(pattern), name))
    return operations


def iam_action(entry: dict[str, Any]) -> tuple[str, str]:
    """(access key id, IAM action) of a recorded request, by the protocol of its service."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    key, _, _, service, _ = re.search(r"Credential=([^,]+)", headers["authorization"]).group(1).split("/")
    prefix = {"monitoring": "cloudwatch"}.get(service, service)
    path = urllib.parse.urlsplit(entry["url"]).path
    raw = entry.get("body") or ""
    body = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
    if "x-amz-target" in headers:
        return key, f"{prefix}:{headers['x-amz-target'].split('.')[-1]}"
    if "/operation/" in path:  # Smithy RPC v2 (CloudWatch)
        return key, f"{prefix}:{path.rsplit('/', 1)[1]}"
    if service == "apigateway":
        return key, f"apigateway:{entry['method']}"
    if service == "s3":  # objects only (`aws cloudformation package`): HEAD/GET read one, the rest write it
        assert path.strip("/").count("/") >= 1, f"not an object: {entry['method']} {path}"
        return key, "s3:GetObject" if entry["method"] in ("GET", "HEAD") else "s3:PutObject"
    if service == "lambda":
        for method, pattern, name in _lambda_operations():
            if method == entry["method"] and pattern.fullmatch(path):
                return key, f"lambda:{name}"
        raise AssertionError(f"no Lambda operation for {entry['method']} {path}")
    return key, f"{prefix}:{urllib.parse.parse_qs(body.decode())['Action'][0]}"


def allowed_actions(policy_path: Path) -> set[str]:
    """The actions a policy's Allow statements name, in lower case (IAM matches them so)."""
    policy = json.loads(policy_path.read_text())
    return {
        action.lower()
        for statement in policy["Statement"] if statement["Effect"] == "Allow"
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


def test_the_deployer_policy_allows_every_call_the_deploy_made(deployed: Rehearsal) -> None:
    """Every request `stsvend bootstrap` and `stsvend deploy` (with `chalice deploy`) sent, as the
    emulator recorded it, names an action of deploy/iam/deployer-chalice.json. (moto matches a
    policy's resources for few services, so the resources are held by parliament and review.)"""
    allowed = allowed_actions(ROOT / "deploy" / "iam" / "deployer-chalice.json")
    entries = [json.loads(line) for line in deployed.recording.read_text().splitlines()]
    called = {action for key, action in map(iam_action, entries) if key == DEPLOYER_KEY}
    assert {"lambda:CreateFunction", "apigateway:POST", "iam:CreateRole", "logs:PutRetentionPolicy"} <= called
    assert sorted(a for a in called if a.lower() not in allowed) == []
