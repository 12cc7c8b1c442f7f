"""`stsvend audit`, `monitor` and `revoke` against the local stack, as an operator runs them: real
audit lines from real vends and denials, asked with each filter in both formats; the same lines
asked through Logs Insights on a moto server; monitoring created in the stack's emulator (IAM
authentication on); a revocation written to a target role."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from stsvend.local.stack import LocalStack, LocalState
from stsvend.ops import audit_query, audit_records
from stsvend.ops.revoke import POLICY_NAME, is_ours
from tests.e2e.conftest import Api, aws, own_keys, run_checkout_command

pytestmark = pytest.mark.e2e

READ_ONLY = "arn:aws:iam::111111111111:role/read-only"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
JENKINS = "arn:aws:iam::111111111111:user/jenkins"
SAMPLE_APP = "arn:aws:iam::111111111111:user/sample-app"


def stsvend(stack: LocalStack, *argv: str, env: dict[str, str] | None = None) -> Any:
    return run_checkout_command(
        "-m", "stsvend.cli", *argv, env={"STSVEND_LOCAL_DIR": str(stack.state_dir), **(env or {})}
    )


@pytest.fixture(scope="module")
def decisions(api: Api) -> dict[str, dict[str, Any]]:
    """Three decisions made through the API: two vends and a denial."""
    made = {
        "jenkins": api.credentials("jenkins", DEPLOYER, tags={"build-id": "ops-1"}).body,
        "sample-app": api.credentials("sample-app", READ_ONLY).body,
        "denied": api.credentials("jenkins", READ_ONLY).body,
    }
    assert "AccessKeyId" in made["jenkins"] and made["denied"]["Code"] == "RoleNotGranted"
    return made


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_audit_answers_each_question_from_the_local_log(
    stack: LocalStack, decisions: dict[str, dict[str, Any]]
) -> None:
    log = str(stack.api_log)
    jenkins, sample, denied = decisions["jenkins"], decisions["sample-app"], decisions["denied"]
    ours = {jenkins["RequestId"], sample["RequestId"], denied["RequestId"]}
    cases = [
        (["--role", READ_ONLY], {sample["RequestId"], denied["RequestId"]}),
        (["--caller", JENKINS], {jenkins["RequestId"], denied["RequestId"]}),
        (["--request-id", denied["RequestId"]], {denied["RequestId"]}),
        (["--access-key-id", jenkins["AccessKeyId"]], {jenkins["RequestId"]}),
        (["--code", "RoleNotGranted", "--caller", JENKINS], {denied["RequestId"]}),
        (["--since", "15m"], ours),
    ]
    for filters, expected in cases:
        result = stsvend(stack, "audit", "--log", log, "--format", "json", *filters)
        assert result.returncode == 0, result.stderr
        found = {r["request_id"] for r in json_lines(result.stdout)} & ours
        assert found == expected, filters
    by_request = {
        r["request_id"]: r
        for r in json_lines(stsvend(stack, "audit", "--stage", "local", "--format", "json").stdout)
    }
    vend = by_request[jenkins["RequestId"]]
    assert (vend["event"], vend["caller_principal"], vend["role_arn"], vend["access_key_id"]) == (
        "credentials.vended",
        JENKINS,
        DEPLOYER,
        jenkins["AccessKeyId"],
    )
    assert vend["tags"]["build-id"] == "ops-1" and "SecretAccessKey" not in json.dumps(vend)
    assert (
        f"AttributeKey=AccessKeyId,AttributeValue={jenkins['AccessKeyId']} "
        in (vend["cloudtrail"]["lookup_events"])
    )
    assert by_request[denied["RequestId"]]["code"] == "RoleNotGranted"


def test_audit_table_shows_the_decision_and_what_cloudtrail_holds(
    stack: LocalStack, decisions: dict[str, dict[str, Any]]
) -> None:
    jenkins = decisions["jenkins"]
    result = stsvend(stack, "audit", "--stage", "local", "--request-id", jenkins["RequestId"])
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["TIME", "DECISION", "CALLER", "ROLE", "REQUEST_ID", "ACCESS_KEY_ID"]
    assert row.split()[1:] == ["vended", JENKINS, DEPLOYER, jenkins["RequestId"], jenkins["AccessKeyId"]]
    assert (
        "aws cloudtrail lookup-events --region us-east-1 --lookup-attributes"
        f" AttributeKey=AccessKeyId,AttributeValue={jenkins['AccessKeyId']}"
    ) in result.stdout
    assert f"LIKE '%{jenkins['RequestId']}%'" in result.stdout
    assert "userIdentity.sessionContext.sourceIdentity = 'jenkins'" in result.stdout
    assert "useridentity.sessioncontext.sourceidentity = 'jenkins'" in result.stdout
    denied = stsvend(stack, "audit", "--stage", "local", "--request-id", decisions["denied"]["RequestId"])
    assert "denied RoleNotGranted" in denied.stdout and "cloudtrail" not in denied.stdout.lower()


def test_audit_refuses_bad_input_with_exit_2(stack: LocalStack) -> None:
    for argv in (
        ["--log", str(stack.api_log), "--stage", "local"],
        ["--stage", "local", "--request-id", 'x" or 1=1'],
        ["--stage", "local", "--since", "next week"],
        ["--stage", "local", "--code", "Nope"],
    ):
        result = stsvend(stack, "audit", *argv)
        assert result.returncode == 2 and result.stderr.startswith("stsvend: InvalidArgument: "), argv


# --- Logs Insights, on moto (StartQuery, GetQueryResults) ------------------------------------------


@pytest.fixture(scope="module")
def logs_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_audit_through_logs_insights_reads_the_same_decisions(
    stack: LocalStack, decisions: dict[str, dict[str, Any]], logs_server: str
) -> None:
    keys = {"aws_access_key_id": "AKIDINSIGHTS", "aws_secret_access_key": "not-a-secret"}
    logs = boto3.client("logs", region_name="us-east-1", endpoint_url=logs_server, **keys)
    group = "/aws/lambda/stsvend-prod"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/01/[$LATEST]abc")
    now_ms = int(time.time() * 1000)
    lines = stack.api_log.read_text(encoding="utf-8").splitlines()
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/01/[$LATEST]abc",
        logEvents=[{"timestamp": now_ms - 1000 + i, "message": line} for i, line in enumerate(lines)],
    )
    sample = decisions["sample-app"]
    result = stsvend(
        stack,
        "audit",
        "--log-group",
        group,
        "--role",
        READ_ONLY,
        "--format",
        "json",
        env={
            "AWS_ENDPOINT_URL": logs_server,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
        },
    )
    assert result.returncode == 0, result.stderr
    assert "Logs Insights: Complete" in result.stderr  # the progress line
    through_insights = json_lines(result.stdout)
    from_file = json_lines(
        stsvend(
            stack,
            "audit",
            "--log",
            str(stack.api_log),
            "--role",
            READ_ONLY,
            "--format",
            "json",
            env={"AWS_REGION": "us-east-1"},
        ).stdout
    )
    assert through_insights == from_file
    assert sample["RequestId"] in {r["request_id"] for r in through_insights}
    assert {r["role_arn"] for r in through_insights} == {READ_ONLY}


# --- monitor and revoke, in the stack's emulator ------------------------------------------------


def test_monitor_creates_the_local_stages_alarms_in_the_emulator(
    stack: LocalStack, state: LocalState
) -> None:
    result = stsvend(stack, "monitor", "--stage", "local", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Dry run: nothing written." in result.stdout
    admin = own_keys(state, "admin")
    cloudwatch = aws(state, "cloudwatch", admin)
    assert cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"] == []
    assert stsvend(stack, "monitor", "--stage", "local").returncode == 0
    names = {
        a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix="stsvend-local-")["MetricAlarms"]
    }
    assert "stsvend-local-denied-assume-role-denied" in names and len(names) == 9
    again = stsvend(stack, "monitor", "--stage", "local")
    assert "Applied: 0 to create, 0 to update, 10 unchanged, 1 skipped." in again.stdout


def test_revoke_writes_the_policy_on_the_role_and_the_emulator_applies_it(
    stack: LocalStack, state: LocalState, api: Api
) -> None:
    vended = api.credentials("sample-app", READ_ONLY).body
    ec2 = aws(state, "ec2", vended)
    ec2.describe_instances()  # allowed before
    iam = aws(state, "iam", own_keys(state, "admin"))
    dry = stsvend(
        stack, "revoke", "--stage", "local", "--role", READ_ONLY, "--request-id", vended["RequestId"]
    )
    assert dry.returncode == 0 and "Dry run: nothing written" in dry.stdout
    assert POLICY_NAME not in iam.list_role_policies(RoleName="read-only")["PolicyNames"]
    try:
        result = stsvend(
            stack,
            "revoke",
            "--stage",
            "local",
            "--role",
            READ_ONLY,
            "--access-key-id",
            vended["AccessKeyId"],
            "--apply",
        )
        assert result.returncode == 0, result.stderr
        assert f"was vended by request {vended['RequestId']}" in result.stdout
        [written] = [n for n in iam.list_role_policies(RoleName="read-only")["PolicyNames"] if is_ours(n)]
        policy = iam.get_role_policy(RoleName="read-only", PolicyName=written)["PolicyDocument"]
        [statement] = policy["Statement"]
        assert statement["Condition"]["StringEquals"] == {
            "aws:PrincipalTag/stsvend:request-id": [vended["RequestId"]]
        }
        # The emulator evaluates the Deny (it treats these condition operators as met, so it would
        # deny the role's other sessions too: what AWS does with them is in docs/operating.md).
        with pytest.raises(ClientError) as denied:
            ec2.describe_instances()
        assert denied.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation")
        caller = stsvend(stack, "revoke", "--stage", "local", "--role", READ_ONLY, "--caller", SAMPLE_APP)
        assert (
            f'policies/grants/local.json: the grant for {SAMPLE_APP}: set "enabled": false' in caller.stdout
        )
    finally:
        # The stack is shared by the session's tests, and the emulator denies every session of a
        # role with this policy.
        for name in iam.list_role_policies(RoleName="read-only")["PolicyNames"]:
            if is_ours(name):
                iam.delete_role_policy(RoleName="read-only", PolicyName=name)


def test_revokes_run_at_once_lose_none_and_report_only_what_is_in_force(
    stack: LocalStack, state: LocalState
) -> None:
    """Six `stsvend revoke --apply` processes at once on one role of the local stack's emulator: each
    reports its revocation in force, and when all have finished every one of them is."""
    from concurrent.futures import ThreadPoolExecutor

    iam = aws(state, "iam", own_keys(state, "admin"))
    name = f"revoke-target-{time.time_ns()}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    requests = [f"c0ffee{i:02d}-1234-4bcd-9876-{time.time_ns() % 10**12:012d}" for i in range(4)]
    targets = [["--request-id", r] for r in requests] + [["--caller", JENKINS], ["--caller", SAMPLE_APP]]
    try:
        with ThreadPoolExecutor(len(targets)) as pool:
            results = list(
                pool.map(
                    lambda target: stsvend(
                        stack, "revoke", "--stage", "local", "--role", role, *target, "--apply"
                    ),
                    targets,
                )
            )
        requests_in_force: set[str] = set()
        callers_in_force: set[str] = set()
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            for statement in iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"][
                "Statement"
            ]:
                condition = statement["Condition"]
                requests_in_force |= set(
                    condition.get("StringEquals", {}).get("aws:PrincipalTag/stsvend:request-id", [])
                )
                callers_in_force |= set(
                    condition.get("StringEqualsIgnoreCase", {}).get("aws:PrincipalTag/stsvend:caller", [])
                )
        for result, (_, value) in zip(results, targets, strict=True):
            assert result.returncode == 0, result.stderr
            assert "Read back in force" in result.stdout and "denied every action" in result.stdout
            assert value in requests_in_force | callers_in_force, (value, result.stdout)
    finally:
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)


def test_the_ops_commands_print_no_secret(stack: LocalStack, decisions: dict[str, dict[str, Any]]) -> None:
    """Belt and braces beside the suite-wide guard: the audit output of a vend holds its key id only."""
    result = stsvend(stack, "audit", "--stage", "local", "--format", "json")
    for answer in decisions.values():
        for secret in (answer.get("SecretAccessKey"), answer.get("SessionToken")):
            assert not secret or secret not in result.stdout + result.stderr
    # Every audit line the service wrote is a well-formed record.
    now = datetime.now(timezone.utc)
    question = audit_query.Question(since=now - timedelta(hours=1), until=now)
    reading = audit_records.read_file(Path(stack.api_log), question)
    assert reading.skipped == 0 and len(reading.decisions) >= len(decisions)
