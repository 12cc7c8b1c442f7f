"""The Terraform form of a stage (`make terraform-package`, tools/terraform_package.py): Chalice's
`--pkg-format terraform` output adapted to Terraform >= 1.5 and the AWS provider 5.x, with what the
CloudFormation path and `stsvend deploy` set: the function's log group with the stage's retention
(created before the function), the API stage's tracing, throttling and JSON access log, the
IAM-refused metric and alarm, the optional WAF, the grants table as `stsvend bootstrap` makes it.

Offline, every reference in the configuration is checked to name something it declares, and
Terraform itself loads the configuration (`init` with no provider at hand). With the AWS provider
from a mirror ($STSVEND_TERRAFORM_PLUGIN_DIR, see tests/functional/test_terraform.py), `terraform
init`, `validate` and `plan` run, the plan against the rehearsal's emulator (tests/deploy_emulator.py)
as AWS; without one they skip, and the skip says what is missing and how to provide it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.model import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA
from stsvend.ops import definitions, deployment
from tests.functional.test_deploy_rehearsal import REGION as REHEARSAL_REGION
from tests.functional.test_deploy_rehearsal import emulator
from tests.functional.test_terraform import NO_PROVIDER, NO_TERRAFORM, TERRAFORM, provider_dir, terraform

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("terraform") / "out"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("home")),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "terraform_package.py"), STAGE, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def tf(package: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((package / "chalice.tf.json").read_text())
    return document


@pytest.fixture(scope="module")
def stage() -> deployment.Deployment:
    return deployment.deployment(Checkout.open(ROOT), STAGE)


def test_current_terraform_and_aws_provider_5(tf: dict[str, Any]) -> None:
    assert tf["terraform"]["required_version"] == ">= 1.5"
    assert tf["terraform"]["required_providers"] == {
        "aws": {"source": "hashicorp/aws", "version": ">= 5.0, < 6.0"}
    }
    assert "null_data_source" not in json.dumps(tf)
    # Provider 5 deprecates the deployment's stage; the stage is a resource of its own.
    assert "stage_name" not in tf["resource"]["aws_api_gateway_deployment"]["rest_api"]


def test_the_function_writes_to_a_group_with_the_stages_retention(
    tf: dict[str, Any], stage: deployment.Deployment
) -> None:
    resources = tf["resource"]
    function = resources["aws_lambda_function"]["api_handler"]
    group = resources["aws_cloudwatch_log_group"]["function"]
    assert group["name"] == f"/aws/lambda/{function['function_name']}" == stage.log_group
    assert group["retention_in_days"] == stage.log_retention_days == 400
    assert function["depends_on"] == ["aws_cloudwatch_log_group.function"]
    assert resources["aws_iam_role"]["api_handler_role"]["name"] == stage.service_role_name


def test_the_api_stage_traces_throttles_and_logs_access(
    tf: dict[str, Any], stage: deployment.Deployment
) -> None:
    resources = tf["resource"]
    api_stage = resources["aws_api_gateway_stage"]["rest_api"]
    assert api_stage["stage_name"] == stage.api_stage and api_stage["xray_tracing_enabled"] is True
    assert api_stage["access_log_settings"]["format"] == deployment.ACCESS_LOG_FORMAT
    assert resources["aws_cloudwatch_log_group"]["access"]["name"] == stage.access_log_group
    settings = resources["aws_api_gateway_method_settings"]["all"]
    assert settings["method_path"] == "*/*"
    defaults = deployment.stage_settings(ROOT, STAGE)
    assert tf["variable"]["throttling_rate_limit"]["default"] == defaults.throttling_rate_limit
    assert tf["variable"]["throttling_burst_limit"]["default"] == defaults.throttling_burst_limit
    refused = resources["aws_cloudwatch_log_metric_filter"]["iam_refused"]
    assert refused["pattern"] == deployment.IAM_REFUSED_PATTERN
    assert (
        resources["aws_wafv2_web_acl_association"]["stage"]["count"] == "${var.web_acl_arn == null ? 0 : 1}"
    )
    # Every method still demands SigV4, as Chalice wrote the API document, but the three unsigned by
    # design: the OIDC route and the issuer's public documents (docs/threat-model.md §7, §8).
    swagger = json.loads(tf["locals"]["chalice_api_swagger"])
    unsigned = {("/oidc/credentials", "post"), ("/.well-known/openid-configuration", "get"),
                ("/.well-known/jwks.json", "get")}
    methods = [(p, v, m) for p, path in swagger["paths"].items() for v, m in path.items()]
    assert {(p, v) for p, v, _ in methods} >= unsigned
    signed = [m for p, v, m in methods if (p, v) not in unsigned]
    assert signed and all(m["security"] == [{"sigv4": []}] for m in signed)
    assert all(not m.get("security") for p, v, m in methods if (p, v) in unsigned)
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_the_grants_table_is_the_one_bootstrap_makes_and_outlives_a_destroy(
    tf: dict[str, Any], stage: deployment.Deployment
) -> None:
    table = tf["resource"]["aws_dynamodb_table"]["grants"]
    assert table["name"] == stage.grants_table
    keys = {table["hash_key"]: "HASH", table["range_key"]: "RANGE"}
    assert keys == {k["AttributeName"]: k["KeyType"] for k in KEY_SCHEMA}
    assert table["attribute"] == [
        {"name": a["AttributeName"], "type": a["AttributeType"]} for a in ATTRIBUTE_DEFINITIONS
    ]
    assert table["billing_mode"] == "PAY_PER_REQUEST" and table["deletion_protection_enabled"] is True
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["lifecycle"] == {"prevent_destroy": True}


def test_the_alarms_dashboard_and_queries_of_stsvend_monitor(tf: dict[str, Any]) -> None:
    resources = tf["resource"]
    alarms = resources["aws_cloudwatch_metric_alarm"]
    assert len(alarms) == len(definitions.alarms(25))
    assert {a["alarm_name"] for a in alarms.values()} == {
        f"stsvend-prod-{a.key}" for a in definitions.alarms(25)
    }
    assert alarms["iam_refused"]["metric_name"] == deployment.IAM_REFUSED_METRIC
    assert alarms["duration_near_timeout"]["threshold"] == 20000
    assert len(resources["aws_cloudwatch_query_definition"]) == len(definitions.saved_queries())
    json.loads(resources["aws_cloudwatch_dashboard"]["stage"]["dashboard_body"])


_REFERENCE = re.compile(
    r"\b(data\.[a-z0-9_]+\.[a-z0-9_]+|var\.[a-z0-9_]+|local\.[a-z0-9_]+|aws_[a-z0-9_]+\.[a-z0-9_]+)"
)


def test_every_method_invokes_the_alias_live_which_alone_api_gateway_may_invoke(tf: dict[str, Any]) -> None:
    """As on the other deploy paths: each apply that changes the function publishes a version, the
    alias `live` serves it (or `var.live_version`, the rollback), and the API calls only the alias."""
    resources = tf["resource"]
    assert resources["aws_lambda_function"]["api_handler"]["publish"] is True
    alias = resources["aws_lambda_alias"][deployment.ALIAS]
    assert alias["name"] == deployment.ALIAS
    assert alias["function_name"] == "${aws_lambda_function.api_handler.function_name}"
    latest = "aws_lambda_function.api_handler.version"
    assert alias["function_version"] == f"${{coalesce(var.live_version, {latest})}}"
    assert tf["variable"]["live_version"]["default"] is None
    swagger = json.loads(tf["locals"]["chalice_api_swagger"])
    uris = [
        spec["x-amazon-apigateway-integration"]["uri"]
        for path in swagger["paths"].values()
        for method, spec in path.items()
        if method != "options"
    ]
    assert len(uris) == sum(len(methods) for methods in app_module.app.routes.values())
    assert set(uris) == {"${aws_lambda_alias.live.invoke_arn}"}
    permissions = resources["aws_lambda_permission"]
    assert [(p["function_name"], p.get("qualifier")) for p in permissions.values()] == [
        ("${aws_lambda_alias.live.function_name}", "${aws_lambda_alias.live.name}")
    ]
    assert tf["output"]["LiveVersion"] == {"value": "${aws_lambda_alias.live.function_version}"}


def test_every_reference_names_something_declared(tf: dict[str, Any]) -> None:
    declared = {f"{kind}.{name}" for kind, blocks in tf["resource"].items() for name in blocks}
    declared |= {f"data.{kind}.{name}" for kind, blocks in tf.get("data", {}).items() for name in blocks}
    declared |= {f"var.{name}" for name in tf.get("variable", {})}
    declared |= {f"local.{name}" for name in tf.get("locals", {})}
    referenced: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str) and "${" in value:
            referenced.update(_REFERENCE.findall(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(tf)
    for blocks in tf["resource"].values():
        for block in blocks.values():
            referenced.update(block.get("depends_on", []))
    assert referenced - declared == set()
    assert {"aws_cloudwatch_log_group.access", "var.alarm_topic_arn", "aws_api_gateway_stage.rest_api"} <= {
        ".".join(r.split(".")[:2]) for r in referenced
    }


# --- Terraform itself -----------------------------------------------------------------------------------


def _config_errors(output: str) -> list[str]:
    """Terraform's error titles, but the one that says the AWS provider is not at hand."""
    titles = [line.strip() for line in output.splitlines() if line.strip().startswith("Error: ")]
    return [t for t in titles if t != "Error: Failed to query available provider packages"]


@pytest.mark.skipif(TERRAFORM is None, reason=NO_TERRAFORM)
def test_terraform_loads_the_configuration_without_the_provider(package: Path, tmp_path: Path) -> None:
    """Where no provider can be had, `terraform init` still reads and decodes the whole configuration
    (the terraform block and version constraints, variables, locals, outputs, every block's meta-arguments
    such as depends_on and lifecycle) before it looks for the provider: the only error is the missing
    provider. A configuration broken on purpose shows that the check sees such errors."""
    empty_mirror = tmp_path / "no-providers"
    empty_mirror.mkdir()
    work = tmp_path / "stage"
    shutil.copytree(package, work)
    init = terraform(work, "init", "-backend=false", "-input=false", "-no-color", plugins=empty_mirror)
    output = init.stdout + init.stderr
    assert "Error: Failed to query available provider packages" in output, output
    assert _config_errors(output) == [], output

    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    document = json.loads((broken / "chalice.tf.json").read_text())
    document["resource"]["aws_lambda_alias"]["live"]["depends_on"] = ["not a reference"]
    (broken / "chalice.tf.json").write_text(json.dumps(document))
    init = terraform(broken, "init", "-backend=false", "-input=false", "-no-color", plugins=empty_mirror)
    assert _config_errors(init.stdout + init.stderr) != [], init.stdout + init.stderr


# The services the configuration calls, all answered by the emulator (the AWS provider's `endpoints`).
EMULATED_SERVICES = ("apigateway", "cloudwatch", "dynamodb", "iam", "lambda", "logs", "s3", "sts", "wafv2")
TOPIC = "arn:aws:sns:eu-west-1:999999999999:platform-oncall"


def emulator_provider(url: str) -> dict[str, Any]:
    """The AWS provider pointed at the emulator: its endpoints, fixed credentials, no account lookup."""
    return {"provider": {"aws": {
        "region": REHEARSAL_REGION, "access_key": "testing", "secret_key": "testing",
        "skip_credentials_validation": True, "skip_metadata_api_check": True,
        "skip_region_validation": True, "s3_use_path_style": True,
        "endpoints": {service: url for service in EMULATED_SERVICES},
    }}}


def test_init_validate_and_plan_against_the_emulator(
    package: Path, tmp_path: Path, stage: deployment.Deployment
) -> None:
    """`terraform init`, `validate` and `plan` on `make terraform-package`'s output, with the AWS
    provider from a mirror and the emulator as AWS; the plan creates what the guide says."""
    if TERRAFORM is None:
        pytest.skip(f"{NO_TERRAFORM}: init/validate/plan not run")
    plugins = provider_dir()
    if plugins is None:
        pytest.skip(f"{NO_PROVIDER}: init/validate/plan not run")
    work = tmp_path / "stage"
    shutil.copytree(package, work)
    init = terraform(work, "init", "-backend=false", "-input=false", "-no-color", plugins=plugins)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = terraform(work, "validate", "-no-color", plugins=plugins)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    with emulator() as url:
        (work / "emulator.tf.json").write_text(json.dumps(emulator_provider(url)))
        plan = terraform(work, "plan", "-input=false", "-no-color", "-out=stage.plan",
                         f"-var=alarm_topic_arn={TOPIC}", plugins=plugins)
        assert plan.returncode == 0, plan.stdout + plan.stderr
    shown = terraform(work, "show", "-json", "stage.plan", plugins=plugins)
    assert shown.returncode == 0, shown.stderr
    planned = {
        r["address"]: r.get("values", {})
        for r in json.loads(shown.stdout)["planned_values"]["root_module"]["resources"]
    }
    assert planned["aws_iam_role.api_handler_role"]["name"] == stage.service_role_name
    group = planned["aws_cloudwatch_log_group.function"]
    assert (group["name"], group["retention_in_days"]) == (stage.log_group, stage.log_retention_days)
    api_stage = planned["aws_api_gateway_stage.rest_api"]
    assert (api_stage["stage_name"], api_stage["xray_tracing_enabled"]) == (stage.api_stage, True)
    assert api_stage["access_log_settings"][0]["format"] == deployment.ACCESS_LOG_FORMAT
    settings = deployment.stage_settings(ROOT, STAGE)
    throttling = planned["aws_api_gateway_method_settings.all"]["settings"][0]
    assert (throttling["throttling_rate_limit"], throttling["throttling_burst_limit"]) == (
        settings.throttling_rate_limit, settings.throttling_burst_limit)
    assert planned["aws_lambda_alias.live"]["name"] == deployment.ALIAS
    alarms = [v for address, v in planned.items() if address.startswith("aws_cloudwatch_metric_alarm.")]
    assert len(alarms) == len(definitions.alarms(25))
    assert all(a["alarm_actions"] == [TOPIC] for a in alarms)
