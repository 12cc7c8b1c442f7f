"""`make terraform-package STAGE=prod`: the Terraform form of a stage, for current Terraform and the
AWS provider 5.x.

    python tools/terraform_package.py STAGE OUT_DIR

`chalice package --pkg-format terraform` (chalice 1.34) cannot be used as it is: it refuses a stage
with `log_retention_in_days` (UnsupportedFeatureError), and what it writes pins Terraform < 1.4 and
the AWS provider < 5, whose `aws_api_gateway_deployment.stage_name` provider 5 deprecates. This step:

1. runs `chalice package --pkg-format terraform` on a copy of the checkout whose stage has no
   `log_retention_in_days` (the checkout itself is not touched; the retention is added in 2);
2. adapts `chalice.tf.json`: Terraform >= 1.5 and `hashicorp/aws` >= 5, < 6; the stage as an
   `aws_api_gateway_stage` (X-Ray tracing, the JSON access log) with `aws_api_gateway_method_settings`
   (throttling), redeployed on any change of the API document; the function's own log group with
   the stage's retention, created before the function; the access log group, its IAM-refused metric
   filter, an optional WAF web ACL; the grants table as `stsvend bootstrap` makes it (and never
   destroyed by Terraform); the alarms, dashboard and saved queries of `stsvend monitor`
   (stsvend.ops.definitions); the service role's ARN as an output;
3. releases, as `stsvend deploy` makes them: the function is published as a version on each apply
   that changes it, the alias `live` serves `var.live_version` (null: the latest), every method of
   the API invokes the alias and only the alias may be invoked by API Gateway; rolling back is
   `terraform apply -var live_version=N` (or `aws lambda update-alias`), docs/deploying.md.

Variables: `alarm_topic_arn`, `throttling_rate_limit`, `throttling_burst_limit`, `web_acl_arn`
(defaults: deploy/stages.json), `live_version`. tests/functional/test_terraform_package.py checks
the result, and runs `terraform init`/`validate`/`plan` where the AWS provider is available.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stsvend.checkout.checkout import Checkout  # noqa: E402
from stsvend.checkout.model import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA  # noqa: E402
from stsvend.ops import definitions, deployment  # noqa: E402

TERRAFORM_VERSION = ">= 1.5"
AWS_PROVIDER = {"source": "hashicorp/aws", "version": ">= 5.0, < 6.0"}
# What `chalice package` reads from a checkout.
_PACKAGE_FILES = ("app.py", "requirements.txt", "requirements-vendor.txt")
_PACKAGE_DIRS = ("chalicelib", "vendor", ".chalice")


def chalice_terraform(root: Path, stage: str, out: Path) -> dict[str, Any]:
    """`chalice package --pkg-format terraform` of `stage`, without the retention Chalice refuses."""
    with tempfile.TemporaryDirectory(prefix="stsvend-tf-") as scratch:
        copy = Path(scratch)
        for name in _PACKAGE_FILES:
            if (root / name).exists():
                shutil.copy2(root / name, copy / name)
        for name in _PACKAGE_DIRS:
            if (root / name).is_dir():
                shutil.copytree(
                    root / name,
                    copy / name,
                    ignore=shutil.ignore_patterns("deployed", "deployments", "__pycache__"),
                )
        config_path = copy / ".chalice" / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.pop("log_retention_in_days", None)
        config["stages"][stage].pop("log_retention_in_days", None)
        config_path.write_text(json.dumps(config), encoding="utf-8")
        chalice = Path(sys.executable).parent / "chalice"
        subprocess.run(
            [
                str(chalice if chalice.exists() else "chalice"),
                "package",
                "--pkg-format",
                "terraform",
                "--stage",
                stage,
                str(out),
            ],
            cwd=copy,
            check=True,
        )
    document: dict[str, Any] = json.loads((out / "chalice.tf.json").read_text(encoding="utf-8"))
    return document


def _tf(value: Any, names: dict[str, str]) -> Any:
    """A definition's value with its placeholders as Terraform expressions or literals."""
    return definitions.fill(value, names)


def adapt(
    tf: dict[str, Any], d: deployment.Deployment, settings: deployment.StageSettings, timeout_seconds: int
) -> dict[str, Any]:
    resources = tf["resource"]
    tf["terraform"] = {"required_version": TERRAFORM_VERSION, "required_providers": {"aws": AWS_PROVIDER}}
    # The null provider's data source was only Chalice's way of naming the app and stage.
    tf.get("data", {}).pop("null_data_source", None)

    api = resources["aws_api_gateway_deployment"]["rest_api"]
    api.pop("stage_name", None)
    api.pop("stage_description", None)
    api["triggers"] = {"redeployment": "${sha1(local.chalice_api_swagger)}"}
    api["lifecycle"] = {"create_before_destroy": True}
    resources["aws_api_gateway_stage"] = {
        "rest_api": {
            "rest_api_id": "${aws_api_gateway_rest_api.rest_api.id}",
            "deployment_id": "${aws_api_gateway_deployment.rest_api.id}",
            "stage_name": d.api_stage,
            "xray_tracing_enabled": d.xray,
            "access_log_settings": {
                "destination_arn": "${aws_cloudwatch_log_group.access.arn}",
                "format": deployment.ACCESS_LOG_FORMAT,
            },
        }
    }
    resources["aws_api_gateway_method_settings"] = {
        "all": {
            "rest_api_id": "${aws_api_gateway_rest_api.rest_api.id}",
            "stage_name": "${aws_api_gateway_stage.rest_api.stage_name}",
            "method_path": "*/*",
            "settings": {
                "throttling_rate_limit": "${var.throttling_rate_limit}",
                "throttling_burst_limit": "${var.throttling_burst_limit}",
            },
        }
    }
    resources["aws_wafv2_web_acl_association"] = {
        "stage": {
            "count": "${var.web_acl_arn == null ? 0 : 1}",
            "resource_arn": "${aws_api_gateway_stage.rest_api.arn}",
            "web_acl_arn": "${var.web_acl_arn}",
        }
    }

    retention = d.log_retention_days
    resources["aws_cloudwatch_log_group"] = {
        "function": {"name": d.log_group, **({"retention_in_days": retention} if retention else {})},
        "access": {"name": d.access_log_group, **({"retention_in_days": retention} if retention else {})},
    }
    # Lambda creates /aws/lambda/<function> on the first invocation: the group must exist first.
    resources["aws_lambda_function"]["api_handler"]["depends_on"] = ["aws_cloudwatch_log_group.function"]
    resources["aws_cloudwatch_log_metric_filter"] = {
        "iam_refused": {
            "name": f"{d.function_name}-iam-refused",
            "log_group_name": "${aws_cloudwatch_log_group.access.name}",
            "pattern": deployment.IAM_REFUSED_PATTERN,
            "metric_transformation": {
                "name": deployment.IAM_REFUSED_METRIC,
                "namespace": definitions.NAMESPACE,
                "value": "1",
                "default_value": "0",
            },
        }
    }

    _serve_the_alias(tf)

    resources["aws_dynamodb_table"] = {
        "grants": {
            "name": d.grants_table,
            "billing_mode": "PAY_PER_REQUEST",
            "hash_key": next(k["AttributeName"] for k in KEY_SCHEMA if k["KeyType"] == "HASH"),
            "range_key": next(k["AttributeName"] for k in KEY_SCHEMA if k["KeyType"] == "RANGE"),
            "attribute": [
                {"name": a["AttributeName"], "type": a["AttributeType"]} for a in ATTRIBUTE_DEFINITIONS
            ],
            "point_in_time_recovery": {"enabled": True},
            "server_side_encryption": {"enabled": True},
            "deletion_protection_enabled": True,
            # The allow-list outlives the app: `terraform destroy` refuses instead of deleting it.
            "lifecycle": {"prevent_destroy": True},
        }
    }

    names = {
        "Function": d.function_name,
        "LogGroup": d.log_group,
        "ApiName": d.api_name,
        "ApiStage": d.api_stage,
        "Region": "${data.aws_region.chalice.name}",
        "Account": "${data.aws_caller_identity.chalice.account_id}",
        "Prefix": d.function_name,
    }
    alarms = definitions.alarms(timeout_seconds)
    resources["aws_cloudwatch_metric_alarm"] = {
        alarm.key.replace("-", "_"): _alarm(_tf(alarm.properties(), names)) for alarm in alarms
    }
    resources["aws_cloudwatch_dashboard"] = {
        "stage": {
            "dashboard_name": d.function_name,
            "dashboard_body": _tf(definitions.dashboard_body(alarms), names),
        }
    }
    resources["aws_cloudwatch_query_definition"] = {
        saved.key.replace("-", "_"): {
            "name": f"{d.function_name}/{saved.key}",
            "query_string": saved.query,
            "log_group_names": ["${aws_cloudwatch_log_group.function.name}"],
        }
        for saved in definitions.saved_queries()
    }

    tf["variable"] = {
        "alarm_topic_arn": {
            "type": "string",
            "default": None,
            "description": "SNS topic notified on ALARM and OK; null: no notifications",
        },
        "throttling_rate_limit": {
            "type": "number",
            "default": settings.throttling_rate_limit,
            "description": "steady requests per second the API stage admits",
        },
        "throttling_burst_limit": {
            "type": "number",
            "default": settings.throttling_burst_limit,
            "description": "burst of requests the API stage admits",
        },
        "web_acl_arn": {
            "type": "string",
            "default": settings.waf_web_acl_arn,
            "description": "a regional WAFv2 web ACL for the API stage; null: none",
        },
        "live_version": {
            "type": "string",
            "default": None,
            "description": f"the published version the alias {deployment.ALIAS} serves; null: the latest",
        },
    }
    outputs = tf.setdefault("output", {})
    outputs["EndpointURL"] = {"value": "${aws_api_gateway_stage.rest_api.invoke_url}/"}
    outputs["ServiceRoleArn"] = {"value": "${aws_iam_role.api_handler_role.arn}"}
    outputs["GrantsTable"] = {"value": "${aws_dynamodb_table.grants.name}"}
    outputs["LiveVersion"] = {"value": f"${{aws_lambda_alias.{deployment.ALIAS}.function_version}}"}
    return tf


_FUNCTION = "aws_lambda_function.api_handler"


def _serve_the_alias(tf: dict[str, Any]) -> None:
    """The function published on each change, the alias `live`, and the API invoking the alias alone.
    Chalice writes the function's invoke ARN into every integration of the API document and grants
    API Gateway the function itself: both are moved to the alias, or the package is refused."""
    resources = tf["resource"]
    alias = f"aws_lambda_alias.{deployment.ALIAS}"
    resources["aws_lambda_function"]["api_handler"]["publish"] = True
    resources["aws_lambda_alias"] = {
        deployment.ALIAS: {
            "name": deployment.ALIAS,
            "function_name": f"${{{_FUNCTION}.function_name}}",
            "function_version": f"${{coalesce(var.live_version, {_FUNCTION}.version)}}",
        }
    }
    swagger = tf["locals"]["chalice_api_swagger"]
    invoke = f"${{{_FUNCTION}.invoke_arn}}"
    if invoke not in swagger:
        raise SystemExit(f"chalice's API document no longer names {invoke}: adapt tools/terraform_package.py")
    tf["locals"]["chalice_api_swagger"] = swagger.replace(invoke, f"${{{alias}.invoke_arn}}")
    permissions = resources["aws_lambda_permission"]
    if set(permissions) != {"rest_api_invoke"}:
        raise SystemExit(f"unexpected Lambda permissions from chalice: {sorted(permissions)}")
    permission = permissions["rest_api_invoke"]
    permission["function_name"] = f"${{{alias}.function_name}}"
    permission["qualifier"] = f"${{{alias}.name}}"
    if _FUNCTION + "." in json.dumps(tf["locals"]):
        raise SystemExit("chalice's API document still invokes the function itself")


def _alarm(properties: dict[str, Any]) -> dict[str, Any]:
    """put_metric_alarm's parameters as an aws_cloudwatch_metric_alarm."""
    out: dict[str, Any] = {
        "alarm_name": properties["AlarmName"],
        "alarm_description": properties["AlarmDescription"],
        "namespace": properties["Namespace"],
        "metric_name": properties["MetricName"],
        "dimensions": {d["Name"]: d["Value"] for d in properties["Dimensions"]},
        "period": properties["Period"],
        "evaluation_periods": properties["EvaluationPeriods"],
        "datapoints_to_alarm": properties["DatapointsToAlarm"],
        "threshold": properties["Threshold"],
        "comparison_operator": properties["ComparisonOperator"],
        "treat_missing_data": properties["TreatMissingData"],
        "alarm_actions": "${var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]}",
        "ok_actions": "${var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]}",
    }
    if "ExtendedStatistic" in properties:
        out["extended_statistic"] = properties["ExtendedStatistic"]
    else:
        out["statistic"] = properties["Statistic"]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    stage, out = argv[0], Path(argv[1]).resolve()
    checkout = Checkout.open(ROOT)
    d = deployment.deployment(checkout, stage)
    settings = deployment.stage_settings(checkout.root, stage)
    timeout = int(
        checkout.config["stages"][stage].get("lambda_timeout", checkout.config.get("lambda_timeout", 60))
    )
    tf = adapt(chalice_terraform(checkout.root, stage, out), d, settings, timeout)
    (out / "chalice.tf.json").write_text(json.dumps(tf, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {out / 'chalice.tf.json'} (Terraform {TERRAFORM_VERSION},"
        f" AWS provider {AWS_PROVIDER['version']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
