"""`stsvend monitor` against the emulator (a moto server on loopback: CloudWatch alarms and
dashboards, SNS). moto 5.2.5 does not implement Logs query definitions (it answers 500), so those
calls go to botocore's Stubber with real-shaped answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from stsvend.cli import main
from stsvend.ops.common import StageNames
from stsvend.ops.definitions import alarms, saved_queries
from stsvend.ops.monitor import Monitor, summary

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
KEYS = {"aws_access_key_id": "AKIDMONITORTEST", "aws_secret_access_key": "not-a-secret"}


def names(stage: str, timeout: int = 25) -> StageNames:
    return StageNames(stage, f"stsvend-{stage}", "stsvend", "api", f"/aws/lambda/stsvend-{stage}", timeout)


@pytest.fixture
def cloudwatch(moto_url: str) -> Any:
    return boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_url, **KEYS)


def stubbed_logs() -> tuple[Any, Stubber]:
    logs = botocore.session.get_session().create_client("logs", region_name=REGION, **KEYS)
    return logs, Stubber(logs)


def expect_describe(stub: Stubber, prefix: str, definitions: list[dict[str, Any]]) -> None:
    stub.add_response(
        "describe_query_definitions",
        {"queryDefinitions": definitions},
        {"queryDefinitionNamePrefix": prefix, "maxResults": 1000},
    )


def stored(name: str, log_group: str, query: str, number: int) -> dict[str, Any]:
    return {
        "queryDefinitionId": f"qd-{number}",
        "name": name,
        "queryString": query,
        "lastModified": 1796150000000,
        "logGroupNames": [log_group],
    }


def test_monitor_creates_then_changes_nothing_then_corrects_a_changed_threshold(cloudwatch: Any) -> None:
    stage = names("ops-test")
    prefix = "stsvend-ops-test/"
    logs, stub = stubbed_logs()
    with stub:
        # First run: everything is created.
        expect_describe(stub, prefix, [])
        for saved in saved_queries():
            stub.add_response(
                "put_query_definition",
                {"queryDefinitionId": f"qd-{saved.key}"},
                {
                    "name": prefix + saved.key,
                    "queryString": saved.query,
                    "logGroupNames": [stage.log_group],
                },
            )
        monitor = Monitor(cloudwatch, logs, stage, ACCOUNT, REGION)
        changes = monitor.plan()
        assert summary(changes) == "16 to create, 0 to update, 0 unchanged"
        monitor.apply(changes)

        found = {
            a["AlarmName"]: a
            for a in cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-ops-test-")["MetricAlarms"]
        }
        assert sorted(found) == sorted(f"stsvend-ops-test-{a.key}" for a in alarms(25))
        errors = found["stsvend-ops-test-lambda-errors"]
        assert (errors["Namespace"], errors["MetricName"], errors["Dimensions"]) == (
            "AWS/Lambda",
            "Errors",
            [{"Name": "FunctionName", "Value": "stsvend-ops-test"}],
        )
        assert (errors["Threshold"], errors["EvaluationPeriods"], errors["TreatMissingData"]) == (
            1.0,
            2,
            "notBreaching",
        )
        denied = found["stsvend-ops-test-denied-assume-role-denied"]
        assert (denied["Namespace"], denied["MetricName"]) == ("stsvend", "CredentialsDenied")
        assert sorted((d["Name"], d["Value"]) for d in denied["Dimensions"]) == [
            ("Code", "AssumeRoleDenied"),
            ("service", "stsvend"),
        ]
        assert found["stsvend-ops-test-duration-near-timeout"]["Threshold"] == 20_000.0  # 80% of 25 s
        assert found["stsvend-ops-test-api-5xx"]["Dimensions"] == [
            {"Name": "ApiName", "Value": "stsvend"},
            {"Name": "Stage", "Value": "api"},
        ]
        body = json.loads(cloudwatch.get_dashboard(DashboardName="stsvend-ops-test")["DashboardBody"])
        titles = [w["properties"]["title"] for w in body["widgets"]]
        assert titles == [
            "Vends and denials by code",
            "Latency (ms)",
            "Errors, throttles, 5xx",
            "Alarms",
            "Top callers and roles (vends)",
            "Denials by code and caller",
        ]
        top = body["widgets"][4]["properties"]["query"]
        assert (
            top.startswith("SOURCE '/aws/lambda/stsvend-ops-test' | ")
            and "by caller_principal, role_arn" in top
        )
        assert (
            f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:stsvend-ops-test-lambda-errors"
            in (body["widgets"][3]["properties"]["alarms"])
        )
        stub.assert_no_pending_responses()

        # Second run: nothing differs, nothing is written (the Stubber refuses any put).
        created = [stored(prefix + s.key, stage.log_group, s.query, i) for i, s in enumerate(saved_queries())]
        expect_describe(stub, prefix, created)
        again = monitor.plan()
        assert summary(again) == "0 to create, 0 to update, 16 unchanged"
        monitor.apply(again)
        stub.assert_no_pending_responses()

        # Someone raised a threshold by hand and edited a saved query: both are put back.
        cloudwatch.put_metric_alarm(**{**_as_put(errors), "Threshold": 99.0})
        edited = [dict(created[0], queryString="fields @message")] + created[1:]
        expect_describe(stub, prefix, edited)
        stub.add_response(
            "put_query_definition",
            {"queryDefinitionId": "qd-0"},
            {
                "name": created[0]["name"],
                "queryString": saved_queries()[0].query,
                "logGroupNames": [stage.log_group],
                "queryDefinitionId": "qd-0",
            },
        )
        third = monitor.plan()
        updates = [c for c in third if c.action == "update"]
        assert [(c.name, c.differences) for c in updates] == [
            ("stsvend-ops-test-lambda-errors", ["Threshold 99.0 -> 1"]),
            (created[0]["name"], ["queryString fields @message -> " + saved_queries()[0].query[:57] + "..."]),
        ]
        monitor.apply(third)
        stub.assert_no_pending_responses()
    assert _alarm(cloudwatch, "stsvend-ops-test-lambda-errors")["Threshold"] == 1.0


def test_a_changed_definition_updates_the_alarm_it_changes(cloudwatch: Any) -> None:
    """A stage whose timeout changes: only the duration alarm's threshold follows."""
    logs, stub = stubbed_logs()
    with stub:
        first = Monitor(cloudwatch, logs, names("ops-timeout", timeout=25), ACCOUNT, REGION)
        first.apply([c for c in first._alarms()])
        second = Monitor(cloudwatch, logs, names("ops-timeout", timeout=20), ACCOUNT, REGION)
        changes = second._alarms()
    assert [(c.name, c.differences) for c in changes if c.action != "unchanged"] == [
        ("stsvend-ops-timeout-duration-near-timeout", ["Threshold 20000.0 -> 16000"])
    ]
    second.apply(changes)
    assert _alarm(cloudwatch, "stsvend-ops-timeout-duration-near-timeout")["Threshold"] == 16_000.0


def _alarm(cloudwatch: Any, name: str) -> dict[str, Any]:
    alarm: dict[str, Any] = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    return alarm


def _as_put(alarm: dict[str, Any]) -> dict[str, Any]:
    """An alarm as DescribeAlarms gives it, as PutMetricAlarm takes it: the fields monitor compares."""
    from stsvend.ops.monitor import ALARM_FIELDS

    return {k: alarm[k] for k in ("AlarmName", *ALARM_FIELDS) if k in alarm}


# --- the command, against the emulator as the local stage --------------------------------------


@pytest.fixture
def local_stage(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local.json naming the moto server, as `make run` writes it."""
    state = {
        "api_url": "http://127.0.0.1:1",
        "emulator_url": moto_url,
        "region": REGION,
        "server_id": "x",
        "grants_table": "t",
        "roles": {},
        "instances": {},
        "identities": {
            "admin": {
                "arn": "arn:aws:iam::123456789012:user/admin",
                "account_id": ACCOUNT,
                "access_key_id": KEYS["aws_access_key_id"],
                "secret_access_key": KEYS["aws_secret_access_key"],
            }
        },
        "logs": {"api": str(tmp_path / "api.log")},
    }
    (tmp_path / "local.json").write_text(json.dumps(state))
    monkeypatch.setenv("STSVEND_LOCAL_DIR", str(tmp_path))
    return tmp_path


def test_dry_run_writes_nothing_and_a_run_creates_with_the_topic(
    local_stage: Path, cloudwatch: Any, moto_url: str, capsys: Any
) -> None:
    argv = ["monitor", "--stage", "local", "--root", str(ROOT)]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+ alarm stsvend-local-lambda-errors" in out and "Dry run: nothing written." in out
    assert "! query stsvend-local/*: the local emulator does not implement Logs query definitions" in out
    assert cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"] == []
    assert "stsvend-local" not in {
        d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]
    }

    assert main([*argv, "--alarm-topic", f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, "--alarm-topic", "https://example.com/hook"]) == 2
    assert main([*argv, "--alarm-topic", f"arn:aws:sns:eu-west-1:{ACCOUNT}:elsewhere"]) == 2
    assert "an alarm notifies a topic in its own region (us-east-1)" in capsys.readouterr().err
    assert cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"] == []

    sns = boto3.client("sns", region_name=REGION, endpoint_url=moto_url, **KEYS)
    topic = sns.create_topic(Name="stsvend-alarms")["TopicArn"]
    assert main([*argv, "--alarm-topic", topic]) == 0
    assert "Applied: 10 to create, 0 to update, 0 unchanged, 1 skipped." in capsys.readouterr().out
    created = cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"]
    assert len(created) == len(alarms(60))
    assert {(tuple(a["AlarmActions"]), tuple(a["OKActions"])) for a in created} == {((topic,), (topic,))}
    # The local stage sets no lambda_timeout: Chalice's default of 60 s.
    assert _alarm(cloudwatch, "stsvend-local-duration-near-timeout")["Threshold"] == 48_000.0

    assert main([*argv, "--alarm-topic", topic]) == 0
    assert "Applied: 0 to create, 0 to update, 10 unchanged, 1 skipped." in capsys.readouterr().out
    # Without the topic, the alarms lose their actions.
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.count(f'AlarmActions ["{topic}"] -> []') == len(created)


def test_delete_removes_the_monitoring_and_nothing_else(
    local_stage: Path, cloudwatch: Any, moto_url: str, capsys: Any
) -> None:
    argv = ["monitor", "--stage", "local", "--root", str(ROOT)]
    cloudwatch.put_metric_alarm(**{**fill_other_alarm(), "AlarmName": "someone-elses-alarm"})
    assert main(argv) == 0
    capsys.readouterr()
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"]) == len(
        alarms(60)
    )

    assert main([*argv, "--delete", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "- alarm stsvend-local-lambda-errors" in out and "- dashboard stsvend-local" in out
    assert f"Plan: {len(alarms(60)) + 1} to delete, 1 skipped. Dry run: nothing deleted." in out
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"]) == len(
        alarms(60)
    )

    assert main([*argv, "--delete"]) == 0
    assert f"Deleted: {len(alarms(60)) + 1} to delete, 1 skipped." in capsys.readouterr().out
    assert cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"] == []
    dashboards = {d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]}
    assert "stsvend-local" not in dashboards
    assert cloudwatch.describe_alarms(AlarmNames=["someone-elses-alarm"])["MetricAlarms"]

    assert main([*argv, "--delete"]) == 0
    assert "Deleted: 0 to delete, 1 skipped." in capsys.readouterr().out
    assert main([*argv, "--delete", "--alarm-topic", f"arn:aws:sns:{REGION}:{ACCOUNT}:t"]) == 2


def fill_other_alarm() -> dict[str, Any]:
    return {
        "Namespace": "Other", "MetricName": "Thing", "Statistic": "Sum", "Period": 300,
        "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }


def test_delete_removes_the_saved_queries_by_their_ids() -> None:
    logs, stub = stubbed_logs()
    stage = names("ops-test")
    mine = [
        stored(f"stsvend-ops-test/{q.key}", stage.log_group, q.query, number)
        for number, q in enumerate(saved_queries())
    ]
    expect_describe(stub, "stsvend-ops-test/", mine)
    for definition in sorted(mine, key=lambda d: d["name"]):
        stub.add_response("delete_query_definition", {"success": True},
                          {"queryDefinitionId": definition["queryDefinitionId"]})

    class NoAlarms:
        def describe_alarms(self, **_: Any) -> dict[str, Any]:
            return {"MetricAlarms": []}

        def list_dashboards(self, **_: Any) -> dict[str, Any]:
            return {"DashboardEntries": []}

    monitor = Monitor(NoAlarms(), logs, stage, ACCOUNT, REGION)
    with stub:
        changes = monitor.removal()
        assert [c.name for c in changes] == sorted(d["name"] for d in mine)
        monitor.delete(changes)
    stub.assert_no_pending_responses()
