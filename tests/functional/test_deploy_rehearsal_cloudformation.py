"""The guide's CloudFormation path (docs/deploying.md, "The CloudFormation path"), rehearsed against a
moto server: the guide's own shell block, read from the page and run as a user runs it (`make
package-prep`, `chalice package` with the merge template, `aws cloudformation package`, `aws
cloudformation deploy` with `stsvend deploy-info --format parameters`), from a copy of the checkout
with the project's virtualenv, `AWS_REGION` and `AWS_DEFAULT_REGION` set as the guide says. Then what
the stack made is read back: the service role the stack output names, AWS_IAM on every method but the
three unsigned by design, the retention on the log group the function writes to, one API stage that
traces, throttles and writes a JSON access log, the alias `live` that every method invokes, the
alarms, dashboard and saved queries. A second release is deployed the same way, and the guide's
rollback commands move the alias back and forward.

The emulator (tests/deploy_emulator.py) fills moto's gaps in its own process, as CloudFormation does
the steps (SAM's transform, the API imported from the template's `Body`, the stage, alias, alarms,
metric filter, query definitions); the template is what `chalice package` wrote."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from stsvend.ops import definitions, deployment
from tests.docs.blocks import blocks_of
from tests.functional.test_deploy_rehearsal import (
    BIN,
    DEPLOYER_KEY,
    REGION,
    ROOT,
    STAGE,
    TEST_KEY,
    _copy_checkout,
    allowed_actions,
    assert_json_access_log,
    deployer_env,
    emulator,
    iam_action,
)

GUIDE = ROOT / "docs" / "deploying.md"
STACK = f"stsvend-{STAGE}"
ARTIFACTS = "stsvend-artifacts-999999999999"  # the guide's artifact bucket
TOPIC = "arn:aws:sns:eu-west-1:999999999999:platform-oncall"  # the guide's alarm topic
UNSIGNED = {("/oidc/credentials", "POST"), ("/.well-known/openid-configuration", "GET"),
            ("/.well-known/jwks.json", "GET")}


def guide_block(section: str, containing: str) -> str:
    """The one `<!-- run: aws -->` shell block of the guide's `section` that holds `containing`."""
    [block] = [b for b in blocks_of(GUIDE)
               if b.kind == "aws" and b.section.startswith(section) and containing in b.text]
    return block.text


@dataclass
class CloudFormationRehearsal:
    url: str
    checkout: Path
    env: dict[str, str]
    recording: Path
    deploy_calls: set[str] = field(default_factory=set)  # the IAM actions the deployer's deploys called

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=TEST_KEY, aws_secret_access_key="testing")

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.checkout, env=self.env,
                              capture_output=True, text=True, timeout=900)

    def deploy(self) -> None:
        """The guide's CloudFormation block, as it stands in the guide."""
        before = self._recorded()
        done = self.run(guide_block("The CloudFormation path", "aws cloudformation deploy"))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        self.deploy_calls |= {
            action for key, action in map(iam_action, self._recorded()[len(before):]) if key == DEPLOYER_KEY
        }

    def _recorded(self) -> list[dict[str, Any]]:
        if not self.recording.exists():
            return []
        return [json.loads(line) for line in self.recording.read_text().splitlines()]

    def outputs(self) -> dict[str, str]:
        [stack] = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def info(self) -> dict[str, Any]:
        done = subprocess.run([str(BIN / "stsvend"), "deploy-info", "--stage", STAGE, "--format", "json"],
                              cwd=self.checkout, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def methods(self) -> dict[tuple[str, str], dict[str, Any]]:
        apigateway = self.client("apigateway")
        api_id = self.outputs()["RestAPIId"]
        return {
            (resource["path"], verb): apigateway.get_method(restApiId=api_id, resourceId=resource["id"],
                                                            httpMethod=verb)
            for resource in apigateway.get_resources(restApiId=api_id, limit=500)["items"]
            for verb in resource.get("resourceMethods", {})
        }


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFormationRehearsal]:
    recording = tmp_path_factory.mktemp("recording") / "requests.jsonl"
    recording_env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    with emulator(recording_env) as url:
        checkout = tmp_path_factory.mktemp("checkout")
        _copy_checkout(checkout)
        (checkout / ".venv").symlink_to(BIN.parent)  # `make venv && . .venv/bin/activate`
        env = deployer_env(url, tmp_path_factory.mktemp("home"))
        # The guide: `chalice` and the AWS CLI read only AWS_DEFAULT_REGION; set both.
        env.update(AWS_DEFAULT_REGION=REGION, PATH=f"{BIN}{os.pathsep}{env['PATH']}")
        rehearsal = CloudFormationRehearsal(url, checkout, env, recording)
        rehearsal.client("s3").create_bucket(
            Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield rehearsal


@pytest.fixture(scope="module")
def deployed(rehearsal: CloudFormationRehearsal) -> CloudFormationRehearsal:
    rehearsal.deploy()
    return rehearsal


def test_the_stack_is_made_and_names_its_service_role(deployed: CloudFormationRehearsal) -> None:
    [stack] = deployed.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}.items() >= {
        "ThrottlingRateLimit": "100", "ThrottlingBurstLimit": "200", "AccessLogRetentionInDays": "400",
        "AlarmTopicArn": TOPIC,
    }.items()
    outputs = deployed.outputs()
    # The guide: on this path the role's name is generated (stsvend-prod-ApiHandlerRole-…); the
    # stack output ServiceRoleArn names it.
    role_name = outputs["ServiceRoleArn"].rsplit("/", 1)[1]
    assert role_name.startswith(f"{STACK}-ApiHandlerRole-")
    role = deployed.client("iam").get_role(RoleName=role_name)["Role"]
    assert role["Arn"] == outputs["ServiceRoleArn"]
    function = deployed.client("lambda").get_function(FunctionName=outputs["APIHandlerName"])["Configuration"]
    assert function["Role"] == role["Arn"]
    assert outputs["APIHandlerName"].startswith(f"{STACK}-APIHandler-")


def test_every_method_requires_aws_iam_but_the_unsigned_three(deployed: CloudFormationRehearsal) -> None:
    methods = deployed.methods()
    info = deployed.info()
    [api] = deployed.client("apigateway").get_rest_apis()["items"]
    assert api["name"] == info["api_name"] and api["id"] == deployed.outputs()["RestAPIId"]
    assert set(methods) >= UNSIGNED and len(methods) > len(UNSIGNED) + 2
    for key, method in methods.items():
        assert method["authorizationType"] == ("NONE" if key in UNSIGNED else "AWS_IAM"), key


def test_the_functions_log_group_keeps_the_stages_retention(deployed: CloudFormationRehearsal) -> None:
    function = deployed.client("lambda").get_function(
        FunctionName=deployed.outputs()["APIHandlerName"])["Configuration"]
    writes_to = function.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{function['FunctionName']}"
    groups = deployed.client("logs").describe_log_groups(logGroupNamePrefix=writes_to)["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
        writes_to: deployed.info()["log_retention_days"]
    }


def test_one_api_stage_traces_throttles_and_writes_a_json_access_log(
    deployed: CloudFormationRehearsal,
) -> None:
    info = deployed.info()
    apigateway = deployed.client("apigateway")
    api_id = deployed.outputs()["RestAPIId"]
    # One stage: a second one (SAM's default `Stage`) would be another URL without the throttling,
    # the access log, tracing or the web ACL.
    stages = apigateway.get_stages(restApiId=api_id)["item"]
    assert [s["stageName"] for s in stages] == [info["api_stage"]]
    stage = apigateway.get_stage(restApiId=api_id, stageName=info["api_stage"])
    assert stage["tracingEnabled"] is True
    throttling = stage["methodSettings"]["*/*"]
    assert (throttling["throttlingRateLimit"], throttling["throttlingBurstLimit"]) == (
        info["throttling_rate_limit"], info["throttling_burst_limit"])
    oidc = stage["methodSettings"][deployment.OIDC_RESOURCE_PATH.lstrip("/") + "/POST"]
    assert (oidc["throttlingRateLimit"], oidc["throttlingBurstLimit"]) == (
        deployment.OIDC_RATE_LIMIT, deployment.OIDC_BURST_LIMIT)
    assert_json_access_log(stage, info["access_log_group"])
    logs = deployed.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=info["access_log_group"])["logGroups"]
    assert [g.get("retentionInDays") for g in groups] == [info["log_retention_days"]]
    [refused] = logs.describe_metric_filters(logGroupName=info["access_log_group"])["metricFilters"]
    assert refused["filterPattern"] == deployment.IAM_REFUSED_PATTERN
    assert refused["metricTransformations"][0]["metricName"] == deployment.IAM_REFUSED_METRIC


def test_the_alarms_dashboard_and_saved_queries_watch_this_stack(deployed: CloudFormationRehearsal) -> None:
    function_name = deployed.outputs()["APIHandlerName"]
    cloudwatch = deployed.client("cloudwatch")
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{STACK}-")["MetricAlarms"]
    wanted = sorted(f"{STACK}-{a.key}" for a in definitions.alarms(25))
    assert sorted(a["AlarmName"] for a in alarms) == wanted
    for alarm in alarms:
        assert alarm["AlarmActions"] == alarm["OKActions"] == [TOPIC], alarm["AlarmName"]
    lambda_alarms = [a for a in alarms if a["Namespace"] == "AWS/Lambda"]
    assert lambda_alarms and all(
        a["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}] for a in lambda_alarms)
    assert [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]] == [STACK]
    queries = deployed.client("logs").describe_query_definitions(queryDefinitionNamePrefix=f"{STACK}/")
    assert sorted(q["name"] for q in queries["queryDefinitions"]) == sorted(
        f"{STACK}/{q.key}" for q in definitions.saved_queries())
    groups = {tuple(q["logGroupNames"]) for q in queries["queryDefinitions"]}
    assert groups == {(f"/aws/lambda/{function_name}",)}


def _serving(rehearsal: CloudFormationRehearsal) -> tuple[str, str]:
    """(the version the alias `live` serves, the alias's ARN)."""
    alias = rehearsal.client("lambda").get_alias(FunctionName=rehearsal.outputs()["APIHandlerName"],
                                                 Name=deployment.ALIAS)
    return alias["FunctionVersion"], alias["AliasArn"]


def _invoked(rehearsal: CloudFormationRehearsal) -> set[str]:
    apigateway = rehearsal.client("apigateway")
    api_id = rehearsal.outputs()["RestAPIId"]
    return {
        apigateway.get_integration(restApiId=api_id, resourceId=r["id"], httpMethod=m)["uri"]
        for r in apigateway.get_resources(restApiId=api_id, limit=500)["items"]
        for m in r.get("resourceMethods", {})
    }


def test_every_method_invokes_the_alias_live(deployed: CloudFormationRehearsal) -> None:
    version, alias_arn = _serving(deployed)
    assert version == "1"
    assert _invoked(deployed) == {
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{alias_arn}/invocations"
    }
    policy = json.loads(deployed.client("lambda").get_policy(
        FunctionName=deployed.outputs()["APIHandlerName"], Qualifier=deployment.ALIAS)["Policy"])
    assert [s["Principal"] for s in policy["Statement"]] == [{"Service": "apigateway.amazonaws.com"}]


def test_a_release_is_a_new_version_and_the_guide_rolls_it_back_and_forward(
    deployed: CloudFormationRehearsal,
) -> None:
    lam = deployed.client("lambda")
    function_name = deployed.outputs()["APIHandlerName"]
    first, alias_arn = _serving(deployed)
    uris = _invoked(deployed)
    # The next release: the function's code changes, and the guide's block deploys it again.
    app = deployed.checkout / "app.py"
    app.write_text(app.read_text() + "\n# the next release\n")
    deployed.deploy()
    [stack] = deployed.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    second, same_alias = _serving(deployed)
    assert (int(second), same_alias, deployed.outputs()["APIHandlerName"]) == (int(first) + 1, alias_arn,
                                                                                 function_name)
    code = {v: lam.get_function(FunctionName=function_name, Qualifier=v)["Configuration"]["CodeSha256"]
            for v in (first, second)}
    assert code[first] != code[second]
    assert _invoked(deployed) == uris  # the API is untouched: it calls the alias

    # The guide's rollback block, with this rehearsal's version numbers for its "6" and "7".
    block = guide_block("Upgrading and rolling back", "aws lambda update-alias")
    lines = block.splitlines()
    [back] = [i for i, line in enumerate(lines) if "--function-version 6" in line]
    [forward] = [i for i, line in enumerate(lines) if "--function-version 7" in line]
    assert back < forward == len(lines) - 1
    roll_back = "\n".join(lines[:forward]).replace("--function-version 6", f"--function-version {first}")
    before = len(deployed._recorded())
    done = deployed.run(roll_back)
    rollback_calls = {action for _, action in map(iam_action, deployed._recorded()[before:])}
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f'"{second}"'  # get-alias: the version serving
    assert {line.split()[0] for line in done.stdout.splitlines()[1:]} >= {"$LATEST", first, second}
    assert _serving(deployed) == (first, alias_arn)
    assert _invoked(deployed) == uris

    fn_line = "\n".join(lines[:2])  # fn=$(aws cloudformation describe-stacks …)
    before = len(deployed._recorded())
    done = deployed.run(fn_line + "\n" + lines[forward].replace("--function-version 7",
                                                                  f"--function-version {second}"))
    assert done.returncode == 0, done.stderr
    assert _serving(deployed) == (second, alias_arn)
    # Every call the rollback block made is one deploy/iam/rollback-cloudformation.json allows.
    rollback_calls |= {action for _, action in map(iam_action, deployed._recorded()[before:])}
    assert {"cloudformation:DescribeStacks", "lambda:UpdateAlias"} <= rollback_calls
    allowed = allowed_actions(ROOT / "deploy" / "iam" / "rollback-cloudformation.json")
    assert sorted(a for a in rollback_calls if a.lower() not in allowed) == []


def test_the_pipelines_policy_allows_every_call_the_deploys_made(deployed: CloudFormationRehearsal) -> None:
    """Every request the guide's CloudFormation block sent with the deployer's key (both releases), as
    the emulator recorded it, names an action of deploy/iam/deployer-cloudformation.json. (The stack's
    own work is CloudFormation's, under the execution role: the emulator makes it in process.)"""
    allowed = allowed_actions(ROOT / "deploy" / "iam" / "deployer-cloudformation.json")
    assert {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet", "s3:PutObject"} <= (
        deployed.deploy_calls)
    assert sorted(a for a in deployed.deploy_calls if a.lower() not in allowed) == []
