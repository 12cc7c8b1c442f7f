"""What a stage deploys and what stsvend adds to it: `stsvend deploy-info`, `stsvend deploy` and
`stsvend rollback`.

Chalice's names for a stage come from stsvend.checkout.names (the service role is
`<app>-<stage>-api_handler`). With `log_retention_in_days`, Chalice puts the retention on
`/aws/lambda/<app>-<stage>-api_handler`, a group the function never writes to: Lambda writes to
`/aws/lambda/<function>`. `stsvend deploy` puts the retention on that group (creating it if needed).

`stsvend deploy --stage S` is the `chalice deploy` path as a team runs it: it refuses to run without
`.chalice/deployed/<stage>.json` when the account already has the stage (Chalice would create a second
live API beside the first), runs `chalice deploy` with the region resolved as the SDKs do, and then
sets what Chalice cannot: the function's log retention, the API stage's throttling, JSON access log,
tracing and optional WAF, and the metric of requests API Gateway refused (IAM) before the function.
The same settings are in the CloudFormation path's template (`.chalice/package-overrides.json`); one
definition, `deploy/stages.json` and this module, feeds both (tests/functional/test_packaging.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stsvend.arns import WEB_ACL
from stsvend.aws import child_environment, unless_refused
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.names import API_HANDLER, chalice_names
from stsvend.ops import common
from stsvend.terminal import printable

SETTINGS = Path("deploy") / "stages.json"
WEB_ACL_ARN = re.compile(WEB_ACL)
# `POST /oidc/credentials`, the one route API Gateway does not authenticate (docs/threat-model.md §8):
# throttled on its own, below every stage's limit. MethodSettings name a path with each `/` as `~1`.
OIDC_RESOURCE_PATH = "/~1oidc~1credentials"
OIDC_RATE_LIMIT = 25
OIDC_BURST_LIMIT = 50
# API Gateway's access log, one JSON object a request. Only $context variables that describe the
# request and its outcome: never a header (Authorization and X-Amz-Security-Token carry the
# signature and the session token), never $input or the body. IAM-refused requests never reach the
# function, so this is their only record ("errorType": API Gateway's gateway response type).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "requestTime": "$context.requestTimeEpoch",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "accountId": "$context.identity.accountId",
        "sourceIp": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "errorType": "$context.error.responseType",
        "errorMessage": "$context.error.message",
    },
    separators=(",", ":"),
)
# The gateway responses of a request refused by IAM authorization (API Gateway developer guide,
# "Gateway response types"): no credentials, a bad or expired signature, or an explicit or
# implicit deny of execute-api:Invoke.
IAM_REFUSED_TYPES = ("MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE", "EXPIRED_TOKEN", "ACCESS_DENIED")
IAM_REFUSED_METRIC = "IamRefused"
IAM_REFUSED_PATTERN = "{ " + " || ".join(f'$.errorType = "{t}"' for t in IAM_REFUSED_TYPES) + " }"


@dataclass(frozen=True)
class StageSettings:
    """stsvend's own settings of a deployed stage (`deploy/stages.json`)."""

    throttling_rate_limit: float
    throttling_burst_limit: int
    waf_web_acl_arn: str | None


@dataclass(frozen=True)
class Deployment:
    stage: str
    app_name: str
    function_name: str
    service_role_name: str
    log_group: str  # where the function writes
    chalice_log_group: str  # where `chalice deploy` puts log_retention_in_days (nothing is written)
    access_log_group: str
    api_name: str
    api_stage: str
    log_retention_days: int | None
    xray: bool
    grants_table: str
    state_file: Path


def deployment(checkout: Checkout, stage: str) -> Deployment:
    config = checkout.config
    checkout.stage_environment(stage)  # the stage exists, or NoSuchStage
    settings = config["stages"][stage]
    app_name = str(config.get("app_name", "stsvend"))
    if config.get("autogen_policy", True) is not False and settings.get("autogen_policy", True) is not False:
        raise common.failure(
            "UnexpectedConfig", "the service role is named for autogen_policy false; the config sets it on"
        )
    function, role = chalice_names(app_name, stage)
    retention = settings.get("log_retention_in_days", config.get("log_retention_in_days"))
    return Deployment(
        stage=stage,
        app_name=app_name,
        function_name=function,
        service_role_name=role,
        log_group=f"/aws/lambda/{function}",
        chalice_log_group=f"/aws/lambda/{function}-{API_HANDLER}",
        access_log_group=f"/aws/apigateway/{function}-access",
        api_name=app_name,
        api_stage=str(settings.get("api_gateway_stage", config.get("api_gateway_stage", "api"))),
        log_retention_days=int(retention) if retention else None,
        xray=bool(settings.get("xray", config.get("xray", False))),
        grants_table=checkout.grants_table(stage),
        state_file=checkout.root / ".chalice" / "deployed" / f"{stage}.json",
    )


def stage_settings(root: Path, stage: str) -> StageSettings:
    path = root / SETTINGS
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entry = document["stages"][stage]
    except (OSError, ValueError) as exc:
        raise common.failure("InvalidSettings", f"{path} cannot be read: {exc}") from None
    except (KeyError, TypeError):
        raise common.failure("InvalidSettings", f"{path} has no stages.{stage}") from None
    rate, burst, acl = (
        entry.get(k) for k in ("throttling_rate_limit", "throttling_burst_limit", "waf_web_acl_arn")
    )
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate <= 10000):
        raise common.failure("InvalidSettings", f"{path}: {stage}.throttling_rate_limit must be 1-10000")
    if not (isinstance(burst, int) and not isinstance(burst, bool) and 0 < burst <= 5000):
        raise common.failure("InvalidSettings", f"{path}: {stage}.throttling_burst_limit must be 1-5000")
    if acl is not None and not (isinstance(acl, str) and WEB_ACL_ARN.fullmatch(acl)):
        raise common.failure(
            "InvalidSettings", f"{path}: {stage}.waf_web_acl_arn must be null or a regional WAFv2 web ACL ARN"
        )
    return StageSettings(float(rate), burst, acl)


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """Chalice's deployed resources by name, from `.chalice/deployed/<stage>.json`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {str(r["name"]): r for r in document["resources"]}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise common.failure("InvalidDeployedState", f"{path} cannot be read: {exc}") from None


# --- the CloudFormation path: the same settings as the template's -----------------------------------

RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
_WEB_ACL_CONDITION = "HasWebAcl"
# The alias every method of the API invokes, on every deploy path.
ALIAS = "live"
# Logical ids that stsvend.ops.template writes besides the monitoring's.
TEMPLATE_IDS = ("StsvendAccessLog", "StsvendWebAcl")


def template_parameters(d: Deployment, settings: StageSettings) -> dict[str, str]:
    """`aws cloudformation deploy --parameter-overrides` for the stage (deploy-info --format parameters)."""
    return {
        "ThrottlingRateLimit": f"{settings.throttling_rate_limit:g}",
        "ThrottlingBurstLimit": str(settings.throttling_burst_limit),
        "AccessLogRetentionInDays": str(d.log_retention_days or 400),
        "WebAclArn": settings.waf_web_acl_arn or "",
    }


def template_sections(
    api_stage: str, defaults: dict[str, str], routes: dict[str, list[str]]
) -> dict[str, Any]:
    """What `chalice package`'s SAM template lacks for the API stage, as `stsvend deploy` sets it on
    the `chalice deploy` path: tracing, throttling, the JSON access log and its IAM-refused metric,
    an optional WAF web ACL, and releases behind the alias `live` (alias_sections). `defaults`: the
    parameters' defaults (prod's settings); `routes`: the app's paths and their methods."""
    alias = alias_sections(routes)
    access_log_arn = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${StsvendAccessLogGroup}"
    )
    return {
        "Parameters": {
            "ThrottlingRateLimit": {
                "Type": "Number",
                "Default": defaults["ThrottlingRateLimit"],
                "MinValue": 1,
                "MaxValue": 10000,
                "Description": "steady requests per second the API stage admits (deploy/stages.json)",
            },
            "ThrottlingBurstLimit": {
                "Type": "Number",
                "Default": defaults["ThrottlingBurstLimit"],
                "MinValue": 1,
                "MaxValue": 5000,
                "Description": "burst of requests the API stage admits (deploy/stages.json)",
            },
            "AccessLogRetentionInDays": {
                "Type": "Number",
                "Default": defaults["AccessLogRetentionInDays"],
                "AllowedValues": [str(days) for days in RETENTION_DAYS],
                "Description": "days the API access log is kept (the stage's log_retention_in_days)",
            },
            "WebAclArn": {
                "Type": "String",
                "Default": "",
                "Description": "a regional WAFv2 web ACL to associate with the API stage; empty: none",
                "AllowedPattern": "^(" + WEB_ACL_ARN.pattern + ")?$",
            },
        },
        "Conditions": {_WEB_ACL_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebAclArn"}, ""]}]}},
        "Resources": {
            **alias["Resources"],
            "RestAPI": {
                "Properties": {
                    **alias["Resources"]["RestAPI"]["Properties"],
                    # Without it, SAM's deployment also makes a stage named `Stage`: a second URL
                    # without this stage's throttling, access log, tracing or web ACL. "2.0" is the
                    # version of the document Chalice writes (SAM: OpenApiVersion).
                    "OpenApiVersion": "2.0",
                    "TracingEnabled": True,
                    "MethodSettings": [
                        {
                            "ResourcePath": "/*",
                            "HttpMethod": "*",
                            "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
                            "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
                        },
                        {
                            # The OIDC route has no IAM auth in front of it: a tighter limit of its own.
                            "ResourcePath": OIDC_RESOURCE_PATH,
                            "HttpMethod": "POST",
                            "ThrottlingRateLimit": OIDC_RATE_LIMIT,
                            "ThrottlingBurstLimit": OIDC_BURST_LIMIT,
                        },
                    ],
                    "AccessLogSetting": {
                        "DestinationArn": {"Fn::Sub": access_log_arn},
                        "Format": ACCESS_LOG_FORMAT,
                    },
                }
            },
            "StsvendAccessLogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": {"Fn::Sub": "/aws/apigateway/${AWS::StackName}-access"},
                    "RetentionInDays": {"Ref": "AccessLogRetentionInDays"},
                },
            },
            "StsvendAccessLogIamRefused": {
                "Type": "AWS::Logs::MetricFilter",
                "Properties": {
                    "LogGroupName": {"Ref": "StsvendAccessLogGroup"},
                    "FilterName": {"Fn::Sub": "${AWS::StackName}-iam-refused"},
                    "FilterPattern": IAM_REFUSED_PATTERN,
                    "MetricTransformations": [
                        {
                            "MetricName": IAM_REFUSED_METRIC,
                            "MetricNamespace": "stsvend",
                            "MetricValue": "1",
                            "DefaultValue": 0,
                        }
                    ],
                },
            },
            "StsvendWebAclAssociation": {
                "Type": "AWS::WAFv2::WebACLAssociation",
                "Condition": _WEB_ACL_CONDITION,
                # SAM names the stage RestAPI<StageName>Stage; the association needs it to exist.
                "DependsOn": f"RestAPI{api_stage}Stage",
                "Properties": {
                    "ResourceArn": {
                        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}"
                        + "/stages/"
                        + api_stage
                    },
                    "WebACLArn": {"Ref": "WebAclArn"},
                },
            },
        },
    }


# The logical id of the alias AutoPublishAlias creates (SAM: <function id>Alias<alias name>); its Ref is
# the alias's ARN. SAM resolves `APIHandler.Alias` in a Ref but not inside the API's DefinitionBody.
SAM_ALIAS_ID = "APIHandlerAlias" + ALIAS


def alias_sections(routes: dict[str, list[str]]) -> dict[str, Any]:
    """The CloudFormation path's releases, as `stsvend deploy` makes them: SAM publishes a Lambda
    version on each stack update that changes the function and moves the alias `live` to it (the
    versions are kept: SAM retains them); every method of the API invokes the alias, which alone
    API Gateway may invoke. Rolling back is one `aws lambda update-alias` (docs/deploying.md).
    Chalice writes each method's integration URI with the function's ARN: each one is overridden,
    so `routes` must be all of the app's routes (tests/functional/test_packaging.py checks)."""
    uri = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${" + SAM_ALIAS_ID + "}/invocations"
    }
    paths = {
        path: {method.lower(): {"x-amazon-apigateway-integration": {"uri": uri}} for method in methods}
        for path, methods in sorted(routes.items())
    }
    return {
        "Resources": {
            # AllProperties: a new version for any change of the function's configuration (timeout,
            # role, tracing, ...), not only of its code, environment or memory (SAM's default): a
            # version's configuration is fixed, and the alias would keep serving the old one.
            "APIHandler": {"Properties": {"AutoPublishAlias": ALIAS, "AutoPublishAliasAllProperties": True}},
            "APIHandlerInvokePermission": {"Properties": {"FunctionName": {"Ref": SAM_ALIAS_ID}}},
            "RestAPI": {"Properties": {"DefinitionBody": {"paths": paths}}},
        }
    }


# --- deploy-info -------------------------------------------------------------------------------------


def info_lines(d: Deployment, settings: StageSettings) -> list[tuple[str, str]]:
    return [
        ("function", d.function_name),
        ("service role", f"{d.service_role_name}  (the principal every target role trusts)"),
        ("function log group", f"{d.log_group}  (retention {d.log_retention_days or 'never expires'} days)"),
        ("REST API", f"{d.api_name}, stage {d.api_stage}  (AWS_IAM on every method)"),
        ("access log group", d.access_log_group),
        (
            "throttling",
            f"{settings.throttling_rate_limit:g} requests/s, burst {settings.throttling_burst_limit}",
        ),
        ("WAF web ACL", settings.waf_web_acl_arn or "none"),
        ("grants table", f"{d.grants_table}  (stsvend bootstrap; not part of the Chalice app)"),
        ("Chalice state", f"{d.state_file}" + ("" if d.state_file.is_file() else "  (absent)")),
    ]


def cmd_deploy_info(args: argparse.Namespace) -> int:
    return common.run(_deploy_info, args)


def _deploy_info(args: argparse.Namespace) -> int:
    stage = common.stage_name(args.stage)
    checkout = Checkout.open(args.root)
    d = deployment(checkout, stage)
    settings = stage_settings(checkout.root, stage)
    state = read_state(d.state_file)
    role_arn = state.get(f"{API_HANDLER}_role", {}).get("role_arn")
    if args.format == "parameters":
        print(" ".join(f"{k}={v}" for k, v in template_parameters(d, settings).items() if v))
        return 0
    if args.format == "json":
        record = {
            "stage": stage,
            "function_name": d.function_name,
            "service_role_name": d.service_role_name,
            "service_role_arn": role_arn,
            "log_group": d.log_group,
            "log_retention_days": d.log_retention_days,
            "access_log_group": d.access_log_group,
            "api_name": d.api_name,
            "api_stage": d.api_stage,
            "rest_api_id": state.get("rest_api", {}).get("rest_api_id"),
            "throttling_rate_limit": settings.throttling_rate_limit,
            "throttling_burst_limit": settings.throttling_burst_limit,
            "waf_web_acl_arn": settings.waf_web_acl_arn,
            "grants_table": d.grants_table,
            "deployed_state": d.state_file.is_file(),
        }
        print(json.dumps(record, indent=2))
        return 0
    print(f"Stage {stage} (chalice deploy; names from .chalice/config.json and {SETTINGS}):")
    for label, value in info_lines(d, settings):
        print(f"  {label + ':':<20}{printable(value)}")
    if role_arn:
        print(f"  {'service role ARN:':<20}{printable(role_arn)}  (from the Chalice state)")
    return 0


# --- deploy --------------------------------------------------------------------------------------------


def preflight(aws: common.Aws, d: Deployment) -> list[str]:
    """Why `chalice deploy` must not run now: it would create a second API or function beside the
    stage's live one (no local state), or access logging cannot be switched on."""
    problems = []
    if not d.state_file.is_file():
        apigateway = aws.client("apigateway")
        pages = apigateway.get_paginator("get_rest_apis").paginate()
        apis = [a["id"] for page in pages for a in page.get("items", []) if a.get("name") == d.api_name]
        function = unless_refused(
            lambda: aws.client("lambda").get_function(FunctionName=d.function_name),
            "ResourceNotFoundException",
        ) is not None
        if apis or function:
            names = [f"REST API {a}" for a in apis] + ([f"function {d.function_name}"] if function else [])
            found = ", ".join(names)
            problems.append(
                f"no {d.state_file.name} in .chalice/deployed/, but this account and region already"
                f" have {found}: chalice deploy would create a second, live API beside the first."
                f" Restore .chalice/deployed/{d.state_file.name} from where your deployments keep it"
                " (docs/deploying.md, 'Keep Chalice's state'), or deploy through CloudFormation or Terraform"
            )
    account = aws.client("apigateway").get_account()
    if not account.get("cloudwatchRoleArn"):
        problems.append(
            "API Gateway has no CloudWatch Logs role in this account and region, so the stage's access"
            " log cannot be written: set one once per region (docs/deploying.md, 'Before you start')"
        )
    return problems


def run_chalice(root: Path, stage: str, region: str) -> None:
    chalice = shutil.which("chalice", path=str(Path(sys.executable).parent)) or shutil.which("chalice")
    if chalice is None:
        raise common.failure("NoChalice", "chalice is not installed here: run from the project's .venv")
    print(f"Running: chalice deploy --stage {stage} (region {region})", flush=True)
    done = subprocess.run(
        [chalice, "deploy", "--stage", stage], cwd=root, env=child_environment(region), check=False
    )
    if done.returncode != 0:
        raise common.failure("ChaliceDeployFailed", f"chalice deploy exited with {done.returncode}")


def _ensure_log_group(logs: Any, name: str, days: int | None) -> str:
    created = unless_refused(
        lambda: logs.create_log_group(logGroupName=name), "ResourceAlreadyExistsException"
    ) is not None
    if days:
        logs.put_retention_policy(logGroupName=name, retentionInDays=days)
    return f"{'+' if created else '='} log group {name}: retention {days or 'never expires'} days"


def stage_patch(d: Deployment, settings: StageSettings, access_log_arn: str) -> list[dict[str, str]]:
    """UpdateStage's operations: what the CloudFormation path sets on `RestAPI`'s stage."""
    rate, burst = f"{settings.throttling_rate_limit:g}", str(settings.throttling_burst_limit)
    return [
        {"op": "replace", "path": "/tracingEnabled", "value": "true" if d.xray else "false"},
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": rate},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": burst},
        {"op": "replace", "path": f"{OIDC_RESOURCE_PATH}/POST/throttling/rateLimit",
         "value": str(OIDC_RATE_LIMIT)},
        {"op": "replace", "path": f"{OIDC_RESOURCE_PATH}/POST/throttling/burstLimit",
         "value": str(OIDC_BURST_LIMIT)},
        {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": access_log_arn},
        {"op": "replace", "path": "/accessLogSettings/format", "value": ACCESS_LOG_FORMAT},
    ]


def apply_after_deploy(aws: common.Aws, d: Deployment, settings: StageSettings, region: str) -> list[str]:
    state = read_state(d.state_file)
    rest_api_id = state.get("rest_api", {}).get("rest_api_id")
    if not isinstance(rest_api_id, str) or not re.fullmatch(r"[a-z0-9]{10}", rest_api_id):
        raise common.failure("InvalidDeployedState", f"{d.state_file} names no REST API id")
    logs = aws.client("logs")
    lines = [
        _ensure_log_group(logs, d.log_group, d.log_retention_days),
        _ensure_log_group(logs, d.access_log_group, d.log_retention_days),
    ]
    account = aws.client("sts").get_caller_identity()["Account"]
    lines += publish_release(aws, d, rest_api_id, region, account)
    access_log_arn = f"arn:aws:logs:{region}:{account}:log-group:{d.access_log_group}"
    logs.put_metric_filter(
        logGroupName=d.access_log_group,
        filterName=f"{d.function_name}-iam-refused",
        filterPattern=IAM_REFUSED_PATTERN,
        metricTransformations=[
            {
                "metricName": IAM_REFUSED_METRIC,
                "metricNamespace": "stsvend",
                "metricValue": "1",
                "defaultValue": 0.0,
            }
        ],
    )
    lines.append(f"= metric filter {d.function_name}-iam-refused -> stsvend/{IAM_REFUSED_METRIC}")
    apigateway = aws.client("apigateway")
    apigateway.update_stage(
        restApiId=rest_api_id, stageName=d.api_stage, patchOperations=stage_patch(d, settings, access_log_arn)
    )
    lines.append(
        f"= API stage {rest_api_id}/{d.api_stage}: tracing {'on' if d.xray else 'off'}, throttling"
        f" {settings.throttling_rate_limit:g}/s burst {settings.throttling_burst_limit}, JSON access log"
    )
    if settings.waf_web_acl_arn:
        stage_arn = f"arn:aws:apigateway:{region}::/restapis/{rest_api_id}/stages/{d.api_stage}"
        aws.client("wafv2").associate_web_acl(WebACLArn=settings.waf_web_acl_arn, ResourceArn=stage_arn)
        lines.append(f"= WAF web ACL {settings.waf_web_acl_arn} on the stage")
    return lines


# --- releases: a Lambda version per deploy, the API calling the alias `live` -------------------------

_PERMISSION_ID = "stsvend-apigateway-live"


def publish_release(aws: common.Aws, d: Deployment, rest_api_id: str, region: str, account: str) -> list[str]:
    """Publish the function's code and configuration as a version, move the alias `live` to it, and
    point every method of the API at the alias, so that `stsvend rollback` is one alias update.
    `chalice deploy` points the methods at the function itself again on each run; this step, right
    after it, points them back (in between, the API calls the code just deployed)."""
    lam = aws.client("lambda")
    version = str(lam.publish_version(FunctionName=d.function_name)["Version"])
    alias = unless_refused(
        lambda: lam.get_alias(FunctionName=d.function_name, Name=ALIAS), "ResourceNotFoundException"
    )
    if alias is not None:
        before = str(alias["FunctionVersion"])
        lam.update_alias(FunctionName=d.function_name, Name=ALIAS, FunctionVersion=version)
    else:
        before = "(none)"
        lam.create_alias(FunctionName=d.function_name, Name=ALIAS, FunctionVersion=version)
    alias_arn = f"arn:aws:lambda:{region}:{account}:function:{d.function_name}:{ALIAS}"
    unless_refused(
        lambda: lam.add_permission(
            FunctionName=d.function_name,
            Qualifier=ALIAS,
            StatementId=_PERMISSION_ID,
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:aws:execute-api:{region}:{account}:{rest_api_id}/*",
        ),
        "ResourceConflictException",
    )
    uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{alias_arn}/invocations"
    apigateway = aws.client("apigateway")
    pages = apigateway.get_paginator("get_resources").paginate(restApiId=rest_api_id)
    pointed = 0
    for resource in (r for page in pages for r in page.get("items", [])):
        for method in resource.get("resourceMethods", {}):
            current = apigateway.get_integration(
                restApiId=rest_api_id, resourceId=resource["id"], httpMethod=method
            )
            if current.get("uri") == uri:
                continue
            apigateway.put_integration(
                restApiId=rest_api_id,
                resourceId=resource["id"],
                httpMethod=method,
                type="AWS_PROXY",
                integrationHttpMethod="POST",
                uri=uri,
                passthroughBehavior=current.get("passthroughBehavior", "WHEN_NO_MATCH"),
                **({"contentHandling": current["contentHandling"]} if current.get("contentHandling") else {}),
            )
            pointed += 1
    if pointed:
        apigateway.create_deployment(restApiId=rest_api_id, stageName=d.api_stage, tracingEnabled=d.xray)
    return [
        f"= release: version {version} of {d.function_name}, alias {ALIAS} {before} -> {version};"
        f" {pointed} method(s) pointed at the alias"
    ]


def cmd_rollback(args: argparse.Namespace) -> int:
    return common.run(_rollback, args)


def _rollback(args: argparse.Namespace) -> int:
    stage = common.stage_name(args.stage)
    if args.to_version is not None and not re.fullmatch(r"[1-9][0-9]{0,9}", args.to_version):
        raise common.bad_input(f"--to-version must be a published version number, not {args.to_version!r}")
    d = deployment(Checkout.open(args.root), stage)
    lam = common.Aws().client("lambda")
    current = int(lam.get_alias(FunctionName=d.function_name, Name=ALIAS)["FunctionVersion"])
    versions = sorted(
        int(v["Version"])
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=d.function_name)
        for v in page.get("Versions", [])
        if v["Version"] != "$LATEST"
    )
    if args.to_version is None:
        earlier = [v for v in versions if v < current]
        if not earlier:
            raise common.failure("NoEarlierVersion", f"{d.function_name} has no version before {current}")
        target = earlier[-1]
    else:
        target = int(args.to_version)
        if target not in versions:
            raise common.bad_input(f"{d.function_name} has no version {target} (versions: {versions})")
    print(f"{d.function_name}: alias {ALIAS} {current} -> {target}" + (" (dry run)" if args.dry_run else ""))
    if not args.dry_run:
        lam.update_alias(FunctionName=d.function_name, Name=ALIAS, FunctionVersion=str(target))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    return common.run(_deploy, args)


def _deploy(args: argparse.Namespace) -> int:
    stage = common.stage_name(args.stage)
    if stage == common.LOCAL_STAGE:
        raise common.bad_input("the local stage is never deployed (make run starts it)")
    checkout = Checkout.open(args.root)
    d = deployment(checkout, stage)
    settings = stage_settings(checkout.root, stage)
    region = common.region()
    aws = common.Aws()
    problems = preflight(aws, d)
    if problems:
        for problem in problems:
            print(f"stsvend: refused: {printable(problem)}", file=sys.stderr)
        raise common.failure("DeployRefused", "nothing was deployed")
    if args.dry_run:
        print(f"Preflight of stage {stage} in {region} passed. Dry run: chalice deploy not run.")
        return 0
    run_chalice(checkout.root, stage, region)
    for line in apply_after_deploy(aws, d, settings, region):
        print(printable(line))
    role_arn = read_state(d.state_file).get(f"{API_HANDLER}_role", {}).get("role_arn", d.service_role_name)
    print(f"Service role (trust it from every target role): {printable(role_arn)}")
    print(f"Keep .chalice/deployed/{stage}.json: the next deploy needs it (docs/deploying.md).")
    return 0


def register(sub: Any) -> None:
    def stage_command(name: str, help: str, dry_run: str | None) -> Any:
        """A subcommand on one stage of a checkout: --stage, --root and (if named) --dry-run."""
        parser = sub.add_parser(name, help=help)
        parser.add_argument("--stage", required=True, help="dev or prod")
        if dry_run is not None:
            parser.add_argument("--dry-run", action="store_true", help=dry_run)
        parser.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")
        return parser

    info = stage_command(
        "deploy-info", "what a stage deploys: names, service role, settings [checkout]", None
    )
    info.add_argument(
        "--format",
        choices=("text", "json", "parameters"),
        default="text",
        help="parameters: the stage's settings as `aws cloudformation deploy --parameter-overrides`",
    )
    stage_command(
        "deploy",
        "chalice deploy a stage (refused without its state), then its stage settings [checkout]",
        "run the preflight checks only",
    )
    rollback = stage_command(
        "rollback",
        "point a stage's alias `live` at an earlier (or, with --to-version, any) release [checkout]",
        "show the change, make none",
    )
    rollback.add_argument("--to-version", metavar="N", help="the version to serve (default: the one before)")
