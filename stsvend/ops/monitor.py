"""`stsvend monitor --stage STAGE [--alarm-topic ARN] [--dry-run]`: create or update a deployed
stage's alarms, dashboard and saved Logs Insights queries, changing only what differs."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from stsvend.aws import unless_refused
from stsvend.checkout.checkout import Checkout
from stsvend.ops import common
from stsvend.ops.definitions import alarms, dashboard_body, fill, saved_queries
from stsvend.terminal import printable

# What stsvend sets on an alarm, compared with DescribeAlarms' answer (one call: a stage's alarms are
# far fewer than its limit of 100 names).
ALARM_FIELDS = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "OKActions",
)
_QUERY_FIELDS = ("queryString", "logGroupNames")


@dataclass
class Change:
    kind: str  # alarm | dashboard | query
    name: str
    action: str  # create | update | unchanged | skipped | delete
    differences: list[str] = field(default_factory=list)
    write: dict[str, Any] = field(default_factory=dict)  # the call's parameters

    def line(self) -> str:
        signs = {"create": "+", "update": "~", "unchanged": "=", "skipped": "!", "delete": "-"}
        sign = signs[self.action]
        text = f"{sign} {self.kind} {self.name}"
        if self.differences:
            text += ": " + "; ".join(self.differences)
        return printable(text)


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _normalized(name: str, value: Any) -> Any:
    if name == "Dimensions":
        return sorted((d["Name"], d["Value"]) for d in value or [])
    if name == "Threshold":
        return float(value)
    if name in ("AlarmActions", "OKActions", "logGroupNames"):
        return sorted(value or [])
    return value


def _differences(wanted: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    out = []
    for name in fields:
        want, have = _normalized(name, wanted.get(name)), _normalized(name, current.get(name))
        if want != have:
            out.append(
                f"{name} {_shown(current.get(name, '(none)'))} -> {_shown(wanted.get(name, '(none)'))}"
            )
    return out


class Monitor:
    """Plans and applies one stage's monitoring with the clients it is given."""

    def __init__(
        self,
        cloudwatch: Any,
        logs: Any,
        names: common.StageNames,
        account: str,
        region: str,
        topic: str | None = None,
        local: bool = False,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.logs = logs
        self.names = names
        self.topic = topic
        self.local = local
        self.fill = {
            "Function": names.function_name,
            "LogGroup": names.log_group,
            "ApiName": names.api_name,
            "ApiStage": names.api_stage,
            "Region": region,
            "Account": account,
            "Prefix": names.function_name,
        }

    def plan(self) -> list[Change]:
        return [*self._alarms(), self._dashboard(), *self._queries()]

    def _alarms(self) -> list[Change]:
        wanted = [fill(a.properties(), self.fill) for a in alarms(self.names.timeout_seconds)]
        actions = [self.topic] if self.topic else []
        for alarm in wanted:
            alarm.update(AlarmActions=actions, OKActions=actions)
        found = self.cloudwatch.describe_alarms(AlarmNames=[a["AlarmName"] for a in wanted])["MetricAlarms"]
        current = {a["AlarmName"]: a for a in found}
        changes = []
        for alarm in wanted:
            name = alarm["AlarmName"]
            if name not in current:
                changes.append(Change("alarm", name, "create", write=alarm))
                continue
            differences = _differences(alarm, current[name], ALARM_FIELDS)
            changes.append(
                Change("alarm", name, "update" if differences else "unchanged", differences, alarm)
            )
        return changes

    def _dashboard(self) -> Change:
        name = self.names.function_name
        body = fill(dashboard_body(alarms(self.names.timeout_seconds)), self.fill)
        write = {"DashboardName": name, "DashboardBody": body}
        found = unless_refused(
            lambda: self.cloudwatch.get_dashboard(DashboardName=name),
            "ResourceNotFound",
            "ResourceNotFoundException",
        )
        if found is None:
            return Change("dashboard", name, "create", write=write)
        current = found["DashboardBody"]
        if json.loads(current) == json.loads(body):
            return Change("dashboard", name, "unchanged", write=write)
        return Change("dashboard", name, "update", ["DashboardBody"], write)

    def _queries(self) -> list[Change]:
        prefix = self.names.function_name + "/"
        if self.local:
            # moto 5.2.5 answers PutQueryDefinition and DescribeQueryDefinitions with a 500.
            note = ["the local emulator does not implement Logs query definitions"]
            return [Change("query", prefix + "*", "skipped", note)]
        current = self._query_definitions(prefix)
        changes = []
        for saved in saved_queries():
            name = prefix + saved.key
            write: dict[str, Any] = {
                "name": name,
                "queryString": saved.query,
                "logGroupNames": [self.names.log_group],
            }
            if name not in current:
                changes.append(Change("query", name, "create", write=write))
                continue
            write["queryDefinitionId"] = current[name]["queryDefinitionId"]
            differences = _differences(write, current[name], _QUERY_FIELDS)
            changes.append(
                Change("query", name, "update" if differences else "unchanged", differences, write)
            )
        return changes

    def _query_definitions(self, prefix: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page = self.logs.describe_query_definitions(
                queryDefinitionNamePrefix=prefix, maxResults=1000, **({"nextToken": token} if token else {})
            )
            for definition in page.get("queryDefinitions", []):
                found.setdefault(definition["name"], definition)
            token = page.get("nextToken")
            if not token:
                return found

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            if change.action not in ("create", "update"):
                continue
            if change.kind == "alarm":
                self.cloudwatch.put_metric_alarm(**change.write)
            elif change.kind == "dashboard":
                self.cloudwatch.put_dashboard(**change.write)
            else:
                self.logs.put_query_definition(**change.write)


    def removal(self) -> list[Change]:
        """What `--delete` removes: the stage's alarms, dashboard and saved queries that exist (the
        log groups stay: they hold the audit log)."""
        names = [fill(a.properties(), self.fill)["AlarmName"] for a in alarms(self.names.timeout_seconds)]
        found = self.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        changes = [Change("alarm", a["AlarmName"], "delete") for a in found]
        dashboard = self.names.function_name
        if dashboard in {d["DashboardName"] for d in self._dashboards(dashboard)}:
            changes.append(Change("dashboard", dashboard, "delete"))
        if self.local:
            note = ["the local emulator does not implement Logs query definitions"]
            return [*changes, Change("query", self.names.function_name + "/*", "skipped", note)]
        for name, definition in sorted(self._query_definitions(self.names.function_name + "/").items()):
            write = {"queryDefinitionId": definition["queryDefinitionId"]}
            changes.append(Change("query", name, "delete", write=write))
        return changes

    def _dashboards(self, prefix: str) -> list[dict[str, Any]]:
        return list(self.cloudwatch.list_dashboards(DashboardNamePrefix=prefix).get("DashboardEntries", []))

    def delete(self, changes: list[Change]) -> None:
        alarm_names = [c.name for c in changes if c.kind == "alarm" and c.action == "delete"]
        if alarm_names:
            self.cloudwatch.delete_alarms(AlarmNames=alarm_names)
        for change in changes:
            if change.action != "delete":
                continue
            if change.kind == "dashboard":
                self.cloudwatch.delete_dashboards(DashboardNames=[change.name])
            elif change.kind == "query":
                self.logs.delete_query_definition(**change.write)


def summary(changes: list[Change], deleting: bool = False) -> str:
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "unchanged", "delete")}
    if deleting:
        text = f"{counts['delete']} to delete"
    else:
        text = f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"
    skipped = sum(c.action == "skipped" for c in changes)
    return text + (f", {skipped} skipped" if skipped else "")


def cmd_monitor(args: argparse.Namespace) -> int:
    return common.run(_monitor, args)


def _monitor(args: argparse.Namespace) -> int:
    stage = common.stage_name(args.stage)
    if args.delete and args.alarm_topic:
        raise common.bad_input("--delete takes no --alarm-topic")
    topic = common.topic_arn(args.alarm_topic) if args.alarm_topic else None
    checkout = Checkout.open(args.root)
    names = common.stage_names(checkout, stage)
    aws = common.Aws.for_stage(str(checkout.root), stage)
    cloudwatch = aws.client("cloudwatch")
    if topic:
        if topic.split(":")[3] != cloudwatch.meta.region_name:
            raise common.bad_input(
                f"--alarm-topic is in {topic.split(':')[3]}; an alarm notifies a topic in its own region"
                f" ({cloudwatch.meta.region_name})"
            )
        _check_topic(aws.client("sns"), topic)
    account = aws.client("sts").get_caller_identity()["Account"]
    monitor = Monitor(
        cloudwatch,
        aws.client("logs"),
        names,
        account,
        cloudwatch.meta.region_name,
        topic,
        local=stage == common.LOCAL_STAGE,
    )
    if args.delete:
        return _delete(monitor, stage, args.dry_run)
    changes = monitor.plan()
    print(
        f"Monitoring of stage {stage}: function {names.function_name}, API {names.api_name}"
        f" (stage {names.api_stage}), log group {names.log_group}"
        + (f", notifying {topic}" if topic else ", no alarm topic")
    )
    for change in changes:
        print(change.line())
    if args.dry_run:
        print(f"Plan: {summary(changes)}. Dry run: nothing written.")
        return 0
    monitor.apply(changes)
    print(f"Applied: {summary(changes)}.")
    return 0


def _delete(monitor: Monitor, stage: str, dry_run: bool) -> int:
    changes = monitor.removal()
    print(f"Removing the monitoring of stage {stage} (the log groups and their audit lines stay):")
    for change in changes:
        print(change.line())
    if dry_run:
        print(f"Plan: {summary(changes, deleting=True)}. Dry run: nothing deleted.")
        return 0
    monitor.delete(changes)
    print(f"Deleted: {summary(changes, deleting=True)}.")
    return 0


def _check_topic(sns: Any, topic: str) -> None:
    found = unless_refused(lambda: sns.get_topic_attributes(TopicArn=topic), "NotFound", "NotFoundException")
    if found is None:
        raise common.bad_input(f"--alarm-topic {topic} does not exist (in this account and region)")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "monitor", help="create or update a stage's alarms, dashboard and saved queries [checkout]"
    )
    parser.add_argument("--stage", required=True, help="dev, prod, or local (the local stack's emulator)")
    parser.add_argument("--alarm-topic", metavar="ARN", help="SNS topic notified on ALARM and OK")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    parser.add_argument(
        "--delete", action="store_true",
        help="remove the stage's alarms, dashboard and saved queries (after chalice delete); logs stay",
    )
    parser.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")
