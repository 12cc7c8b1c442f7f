"""The alarms, dashboard and saved Logs Insights queries of a stage: one definition, rendered for
`stsvend monitor` (names of a `chalice deploy` stage) and for the `chalice package` template
(CloudFormation references). docs/operating.md ("Alarms") gives each threshold's reason.

Text values may hold `${Function}`, `${LogGroup}`, `${ApiName}`, `${ApiStage}`, `${Region}`,
`${Account}` and `${Prefix}` (the start of every resource's name); a renderer fills them in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from stsvend import contract
from stsvend.arns import SNS_TOPIC

# The metrics and audit events the function writes, as the command's contract lists them
# (tests/unit/test_contract.py holds them to the server's). `stsvend audit` reads AUDIT_EVENTS and
# passes over PUBLISHED_EVENT, an issuer document served (not a decision).
NAMESPACE, SERVICE = contract.NAMESPACE, contract.SERVICE
AUDIT_EVENTS, PUBLISHED_EVENT = contract.AUDIT_EVENTS, contract.PUBLISHED_EVENT
PERIOD_SECONDS = 300
# The Lambda's Maximum Duration alarms at this share of its timeout.
TIMEOUT_SHARE = 0.8
# What each denial code's CredentialsDenied count raises: an alarm (its key, threshold in 5 minutes
# and reason), or None where the denial is the service at work (a caller's mistake, a grant's
# decision), counted on the dashboard by code only. Every code of contract.DENIAL_CODES has its entry
# (tests/unit/test_contract.py): a new code is a decision here.
DENIAL_ALARMS: dict[str, tuple[str, float, str] | None] = {
    "ServiceUnavailable": (
        "denied-service-unavailable",
        3,
        "STS or DynamoDB failed after retries 3 or more times in 5 minutes",
    ),
    "AssumeRoleDenied": (
        "denied-assume-role-denied",
        1,
        "a target role refused the service (trust policy or external id)",
    ),
    "InternalError": ("denied-internal-error", 1, "an unexpected error in the service"),
    "NotAuthenticated": (
        "not-authenticated-spike",
        50,
        "50 or more requests in 5 minutes failed authentication (probing or a broken client fleet)",
    ),
    "InvalidRequest": None,
    "DurationNotAllowed": None,
    "PolicyTooLarge": None,
    "CallerNotAllowed": None,
    "SourceNotAllowed": None,
    "RoleNotGranted": None,
    "TagNotAllowed": None,
    "PayloadTooLarge": None,
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")


@dataclass(frozen=True)
class Alarm:
    key: str
    why: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    threshold: float
    evaluation_periods: int = 1

    def properties(self) -> dict[str, Any]:
        """put_metric_alarm's parameters, which are also AWS::CloudWatch::Alarm's properties."""
        stat = (
            {"ExtendedStatistic": self.statistic}
            if self.statistic.startswith("p")
            else {"Statistic": self.statistic}
        )
        return {
            "AlarmName": "${Prefix}-" + self.key,
            "AlarmDescription": f"stsvend: {self.why} (docs/operating.md, Alarms)",
            "Namespace": self.namespace,
            "MetricName": self.metric,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            **stat,
            "Period": PERIOD_SECONDS,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.evaluation_periods,
            "Threshold": self.threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            # No traffic is not a failure: an idle stage stays OK.
            "TreatMissingData": "notBreaching",
        }


def _denied(code: str, key: str, threshold: float, why: str) -> Alarm:
    dimensions = (("Code", code), ("service", SERVICE))
    return Alarm(key, why, NAMESPACE, contract.DENIED_METRIC, dimensions, "Sum", threshold)


def alarms(timeout_seconds: int) -> list[Alarm]:
    function = (("FunctionName", "${Function}"),)
    api = (("ApiName", "${ApiName}"), ("Stage", "${ApiStage}"))
    return [
        Alarm(
            "lambda-errors",
            "the function crashed or timed out in two 5-minute periods running",
            "AWS/Lambda",
            "Errors",
            function,
            "Sum",
            1,
            evaluation_periods=2,
        ),
        Alarm(
            "lambda-throttles",
            "invocations were throttled: callers got errors instead of credentials",
            "AWS/Lambda",
            "Throttles",
            function,
            "Sum",
            1,
        ),
        Alarm(
            "api-5xx",
            "API Gateway answered 5 or more 5xx in 5 minutes",
            "AWS/ApiGateway",
            "5XXError",
            api,
            "Sum",
            5,
        ),
        *(_denied(code, *alarm) for code, alarm in DENIAL_ALARMS.items() if alarm is not None),
        # Requests API Gateway refused before the function (no or a bad signature, no
        # execute-api:Invoke): counted from the access log (stsvend.ops.deployment), the only record.
        Alarm(
            "iam-refused",
            "API Gateway refused 20 or more requests in 5 minutes at IAM authorization (probing, or"
            " callers without execute-api:Invoke)",
            NAMESPACE,
            "IamRefused",
            (),
            "Sum",
            20,
        ),
        Alarm(
            "duration-near-timeout",
            f"an invocation ran {int(TIMEOUT_SHARE * 100)}% of the function timeout",
            "AWS/Lambda",
            "Duration",
            function,
            "Maximum",
            round(TIMEOUT_SHARE * timeout_seconds * 1000),
        ),
    ]


# --- Logs Insights -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavedQuery:
    """A Logs Insights query `monitor` saves for the stage, named by its key."""

    key: str
    query: str


_SHOWN = "fields @timestamp, event, caller_principal, role_arn, code, request_id, access_key_id, source_ip"
_DECISIONS = "filter event in [" + ", ".join(f'"{event}"' for event in AUDIT_EVENTS) + "]"


def saved_queries() -> list[SavedQuery]:
    """The questions of `stsvend audit`, for the console: replace the capitalized value, run."""
    vended = 'filter event = "credentials.vended"'
    return [
        SavedQuery(
            "vends-for-a-role", f'{_SHOWN}\n| {vended} and role_arn = "ROLE_ARN"\n| sort @timestamp desc'
        ),
        SavedQuery(
            "what-a-caller-received",
            f'{_SHOWN}\n| {vended} and caller_principal = "CALLER_ARN"\n| sort @timestamp desc',
        ),
        SavedQuery("decision-for-a-request-id", f'{_SHOWN}\n| {_DECISIONS} and request_id = "REQUEST_ID"'),
        SavedQuery(
            "decisions-for-an-access-key-id", f'{_SHOWN}\n| {_DECISIONS} and access_key_id = "ACCESS_KEY_ID"'
        ),
        SavedQuery(
            "denials-by-code",
            "filter event like /[.]denied$/\n| stats count(*) as denials by code, event, caller_principal"
            "\n| sort denials desc",
        ),
        SavedQuery("top-callers-and-roles", _TOP_CALLERS),
    ]


_TOP_CALLERS = (
    'filter event = "credentials.vended"\n| stats count(*) as vends by caller_principal, role_arn'
    "\n| sort vends desc\n| limit 20"
)


# --- the dashboard -------------------------------------------------------------------------------


def dashboard(alarm_list: list[Alarm]) -> dict[str, Any]:
    function = ["FunctionName", "${Function}"]
    api = ["ApiName", "${ApiName}", "Stage", "${ApiStage}"]
    denied = (
        f"SEARCH('{{{NAMESPACE},Code,service}} MetricName=\"{contract.DENIED_METRIC}\"', 'Sum', "
        + str(PERIOD_SECONDS)
        + ")"
    )

    def widget(kind: str, x: int, y: int, title: str, **properties: Any) -> dict[str, Any]:
        place = {"x": x, "y": y, "width": 12, "height": 6}
        return {"type": kind, **place, "properties": {"title": title, "region": "${Region}", **properties}}

    def metric(x: int, y: int, title: str, metrics: list[Any], stat: str = "Sum") -> dict[str, Any]:
        return widget(
            "metric", x, y, title, period=PERIOD_SECONDS, stat=stat, view="timeSeries", metrics=metrics
        )

    def log(x: int, y: int, title: str, query: str) -> dict[str, Any]:
        return widget(
            "log", x, y, title, view="table", query="SOURCE '${LogGroup}' | " + query.replace("\n", " ")
        )

    widgets = [
        metric(
            0,
            0,
            "Vends and denials by code",
            [
                [NAMESPACE, contract.VENDED_METRIC, "service", SERVICE, {"label": "vended"}],
                [{"expression": denied, "id": "denied", "label": ""}],
            ],
        ),
        metric(
            12,
            0,
            "Latency (ms)",
            [
                ["AWS/Lambda", "Duration", *function, {"stat": "p50", "label": "function p50"}],
                ["AWS/Lambda", "Duration", *function, {"stat": "p90", "label": "function p90"}],
                ["AWS/Lambda", "Duration", *function, {"stat": "p99", "label": "function p99"}],
                ["AWS/ApiGateway", "Latency", *api, {"stat": "p50", "label": "API p50"}],
                ["AWS/ApiGateway", "Latency", *api, {"stat": "p99", "label": "API p99"}],
            ],
            stat="p50",
        ),
        metric(
            0,
            6,
            "Errors, throttles, 5xx",
            [
                ["AWS/Lambda", "Errors", *function],
                ["AWS/Lambda", "Throttles", *function],
                ["AWS/ApiGateway", "5XXError", *api],
                ["AWS/Lambda", "ConcurrentExecutions", *function, {"stat": "Maximum"}],
            ],
        ),
        {
            "type": "alarm",
            "x": 12,
            "y": 6,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Alarms",
                "alarms": [
                    "arn:aws:cloudwatch:${Region}:${Account}:alarm:${Prefix}-" + a.key for a in alarm_list
                ],
            },
        },
        log(0, 12, "Top callers and roles (vends)", _TOP_CALLERS),
        log(12, 12, "Denials by code and caller", saved_queries()[4].query),
    ]
    return {"widgets": widgets}


# --- rendering -------------------------------------------------------------------------------------


def fill(value: Any, names: dict[str, str]) -> Any:
    """`value` with every placeholder replaced by its name."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def dashboard_body(alarm_list: list[Alarm]) -> str:
    return json.dumps(dashboard(alarm_list), separators=(",", ":"), sort_keys=True)


# --- the `chalice package` template ------------------------------------------------------------------

TOPIC_PARAMETER = "AlarmTopicArn"
_TOPIC_CONDITION = "HasAlarmTopic"
_CFN_NAMES = {
    "Function": "${APIHandler}",
    "LogGroup": "/aws/lambda/${APIHandler}",
    "Region": "${AWS::Region}",
    "Account": "${AWS::AccountId}",
    # Named as docs/deploying.md asks (stsvend-<stage>): the same names as `stsvend monitor`'s.
    "Prefix": "${AWS::StackName}",
}


def _logical_id(kind: str, key: str) -> str:
    return "Stsvend" + kind + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", key))


def _cfn(value: Any) -> Any:
    """Text with `${...}` as Fn::Sub (a bare function name as its Ref)."""
    if isinstance(value, str):
        if value == "${APIHandler}":
            return {"Ref": "APIHandler"}
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, list):
        return [_cfn(v) for v in value]
    if isinstance(value, dict):
        return {k: _cfn(v) for k, v in value.items()}
    return value


def template_sections(timeout_seconds: int, api_name: str, api_stage: str) -> dict[str, Any]:
    """Parameters, Conditions and Resources to merge into `chalice package`'s template."""
    names = {**_CFN_NAMES, "ApiName": api_name, "ApiStage": api_stage}
    actions = {"Fn::If": [_TOPIC_CONDITION, [{"Ref": TOPIC_PARAMETER}], {"Ref": "AWS::NoValue"}]}
    alarm_list = alarms(timeout_seconds)
    resources: dict[str, Any] = {}
    for alarm in alarm_list:
        properties = _cfn(fill(alarm.properties(), names))
        resources[_logical_id("Alarm", alarm.key)] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {**properties, "AlarmActions": actions, "OKActions": actions},
        }
    resources["StsvendDashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": {"Fn::Sub": "${AWS::StackName}"},
            "DashboardBody": {"Fn::Sub": fill(dashboard_body(alarm_list), names)},
        },
    }
    for saved in saved_queries():
        resources[_logical_id("Query", saved.key)] = {
            "Type": "AWS::Logs::QueryDefinition",
            "Properties": {
                "Name": {"Fn::Sub": "${AWS::StackName}/" + saved.key},
                "QueryString": saved.query,
                "LogGroupNames": [{"Fn::Sub": names["LogGroup"]}],
            },
        }
    return {
        "Parameters": {
            TOPIC_PARAMETER: {
                "Type": "String",
                "Default": "",
                "Description": "SNS topic for stsvend's alarms (ALARM and OK); empty: no notifications",
                "AllowedPattern": f"^({SNS_TOPIC})?$",
            }
        },
        "Conditions": {_TOPIC_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": TOPIC_PARAMETER}, ""]}]}},
        "Resources": resources,
    }
