"""`stsvend audit` and the shared input checks: audit lines are untrusted input (malformed lines
skipped and counted, control characters escaped, values checked before they go into query text),
every filter answers its question, the Logs Insights query and the CloudTrail SQL hold only checked
values, and LookupEvents is read from real-shaped answers (botocore's Stubber)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from chalicelib.audit import PUBLISHED
from stsvend.errors import CommandError
from stsvend.ops import audit_cloudtrail, audit_output, audit_query, audit_records, common

NOW = datetime(2026, 12, 1, 21, 0, 0, tzinfo=timezone.utc)
JENKINS = "arn:aws:iam::111111111111:user/jenkins"
DEPLOYER = "arn:aws:iam::222222222222:role/deployer"
READ_ONLY = "arn:aws:iam::111111111111:role/read-only"
KEY = "ASIAEXAMPLEKEY000001"


def line(event: str = "credentials.vended", minutes_ago: int = 10, **fields: Any) -> str:
    stamp = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3] + "+0000"
    record = {
        "level": "INFO",
        "message": "credentials vended",
        "timestamp": stamp,
        "service": "stsvend",
        "event": event,
        "request_id": "c0ffee00-1234-4bcd-9876-0123456789ab",
        "caller_arn": JENKINS,
        "caller_principal": JENKINS,
        "role_arn": DEPLOYER,
        **(
            {
                "access_key_id": KEY,
                "source_identity": "jenkins",
                "expiration": (NOW + timedelta(minutes=50)).isoformat(),
            }
            if event == "credentials.vended"
            else {}
        ),
        **fields,
    }
    return json.dumps(record)


def ask(**filters: Any) -> audit_query.Question:
    return audit_query.Question(since=NOW - timedelta(hours=24), until=NOW, **filters)


LINES = [
    line(),
    line(
        "credentials.denied",
        8,
        request_id="0badf00d-1234-4bcd-9876-0123456789ab",
        code="RoleNotGranted",
        role_arn=READ_ONLY,
    ),
    line(
        minutes_ago=5,
        request_id="5ca1ab1e-1234-4bcd-9876-0123456789ab",
        role_arn=READ_ONLY,
        caller_principal="arn:aws:iam::111111111111:user/sample-app",
        access_key_id="ASIAEXAMPLEKEY000002",
    ),
    line(minutes_ago=60 * 30, request_id="01d01d01-1234-4bcd-9876-0123456789ab"),  # outside 24 h
    '{"_aws": {"CloudWatchMetrics": []}, "CredentialsVended": [1.0]}',
    "not json at all",
]


@pytest.mark.parametrize(
    ("filters", "requests"),
    [
        ({}, ["c0ffee00", "0badf00d", "5ca1ab1e"]),
        ({"role": READ_ONLY}, ["0badf00d", "5ca1ab1e"]),
        ({"caller": JENKINS}, ["c0ffee00", "0badf00d"]),
        ({"request_id": "0badf00d-1234-4bcd-9876-0123456789ab"}, ["0badf00d"]),
        ({"access_key_id": "ASIAEXAMPLEKEY000002"}, ["5ca1ab1e"]),
        ({"code": "RoleNotGranted"}, ["0badf00d"]),
        ({"code": "AssumeRoleDenied"}, []),
    ],
)
def test_each_filter_answers_its_question(filters: dict[str, Any], requests: list[str]) -> None:
    reading = audit_records.read_lines(LINES, ask(**filters))
    assert [d.request_id[:8] for d in reading.decisions] == requests
    assert reading.skipped == 0  # the metric line and the plain text are not audit records


def test_the_time_range_bounds_the_answer() -> None:
    question = audit_query.Question(since=NOW - timedelta(minutes=9), until=NOW - timedelta(minutes=6))
    assert [d.request_id[:8] for d in audit_records.read_lines(LINES, question).decisions] == ["0badf00d"]


@pytest.mark.parametrize(
    "bad",
    [
        line(request_id=["a", "list"]),
        line(role_arn={"an": "object"}),
        line(timestamp="yesterday"),
        line(request_id=""),
        '{"event": "credentials.vended", "request_id": "x"' + " " * audit_records.MAX_LINE_CHARS + "}",
        '{"event": "credentials.vended", broken',
    ],
    ids=["list", "object", "time", "empty id", "huge", "broken json"],
)
def test_a_malformed_audit_record_is_skipped_and_counted(bad: str) -> None:
    reading = audit_records.read_lines([bad, LINES[0]], ask())
    assert reading.skipped == 1 and len(reading.decisions) == 1


def test_control_characters_from_the_log_are_escaped_in_the_table_and_json(capsys: Any) -> None:
    hostile = line(caller_principal="arn:aws:iam::111111111111:user/x\x1b[2J\u202e\r\nFAKE")
    decisions = audit_records.read_lines([hostile], ask()).decisions
    audit_output.print_table(decisions, "us-east-1", None)
    audit_output.print_json(decisions, "us-east-1")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert "x\\x1b[2J\\u202e\\r\\nFAKE" in out  # the table
    assert "x\\u001b[2J\\u202e\\r\\nFAKE" in out  # the JSON line
    assert out.count("\n") == len(out.splitlines())


def test_the_insights_query_holds_the_checked_filters() -> None:
    question = ask(
        request_id="c0ffee00-1234-4bcd-9876-0123456789ab",
        caller=JENKINS,
        role=DEPLOYER,
        access_key_id=KEY,
        code="AssumeRoleDenied",
    )
    assert question.insights_query().split("\n| ") == [
        "fields @timestamp, @message",
        'filter event in ["credentials.vended", "credentials.denied", "roles.listed", "whoami.answered",'
        ' "roles.denied", "whoami.denied"]',
        'filter request_id = "c0ffee00-1234-4bcd-9876-0123456789ab"',
        f'filter access_key_id = "{KEY}"',
        f'filter tolower(caller_principal) = "{JENKINS}"',
        f'filter tolower(role_arn) = "{DEPLOYER}"',
        'filter event like /[.]denied$/ and code = "AssumeRoleDenied"',
        "sort @timestamp asc",
        "limit 10000",
    ]


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (common.request_id, 'x" | filter 1=1 | "'),
        (common.request_id, "short"),
        (common.access_key_id, "ASIA'; DROP"),
        (common.access_key_id, "asiaexamplekey000001"),
        (common.caller_arn, "arn:aws:iam::111111111111:user/*"),
        (common.caller_arn, 'arn:aws:iam::111111111111:user/a"b'),
        (common.role_arn, "arn:aws:iam::111111111111:role/a'b"),
        (common.role_arn, "arn:aws:iam::11111111111:role/short-account"),
        (common.denial_code, "Throttled"),
        (common.topic_arn, "arn:aws:sqs:us-east-1:111111111111:queue"),
        (common.stage_name, "../prod"),
    ],
)
def test_bad_input_is_refused_with_exit_status_2(check: Any, value: str) -> None:
    with pytest.raises(CommandError) as raised:
        check(value)
    assert (raised.value.code, raised.value.exit_status) == ("InvalidArgument", 2)


def test_a_session_or_a_pathed_arn_is_the_caller_stsvend_tags() -> None:
    assert common.caller_arn("arn:aws:sts::111111111111:assumed-role/ci/i-0abc") == (
        "arn:aws:iam::111111111111:role/ci"
    )
    assert common.caller_arn("arn:aws:iam::111111111111:user/team/jenkins") == JENKINS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=timezone.utc)),
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, tzinfo=timezone.utc)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=timezone.utc)),
    ],
)
def test_times(text: str, expected: datetime) -> None:
    assert common.parse_time(text, "--since", NOW) == expected


@pytest.mark.parametrize("text", ["tomorrow", "2027-01-01T00:00:00Z", "999999d", "-5m", "5 m"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(CommandError, match="InvalidArgument"):
        common.parse_time(text, "--since", NOW)


# --- CloudTrail ---------------------------------------------------------------------------------


def _vend() -> audit_records.Decision:
    decision = audit_records.read_lines([LINES[0]], ask()).decisions[0]
    return decision


def test_the_cloudtrail_questions_of_a_vend() -> None:
    trail = audit_cloudtrail.TrailQuestion.of(_vend())
    assert trail is not None
    assert trail.lookup_events("eu-west-1") == (
        "aws cloudtrail lookup-events --region eu-west-1 --lookup-attributes"
        f" AttributeKey=AccessKeyId,AttributeValue={KEY}"
        " --start-time 2026-12-01T20:49:00Z --end-time 2026-12-01T22:05:00Z"
    )
    lake = trail.lake_sql()
    assert (
        "LIKE '%c0ffee00-1234-4bcd-9876-0123456789ab%'" in lake[0] and "eventName = 'AssumeRole'" in lake[0]
    )
    assert f"userIdentity.accessKeyId = '{KEY}'" in lake[1]
    assert "userIdentity.sessionContext.sourceIdentity = 'jenkins'" in lake[2]
    athena = trail.athena_sql()
    assert "requestparameters LIKE '%c0ffee00-1234-4bcd-9876-0123456789ab%'" in athena[0]
    assert f"useridentity.accesskeyid = '{KEY}'" in athena[1]
    assert "useridentity.sessioncontext.sourceidentity = 'jenkins'" in athena[2]


@pytest.mark.parametrize(
    "field",
    [{"access_key_id": "ASIA' OR 1=1 --"}, {"request_id": "c0ffee00' OR '1'='1"}, {"role_arn": "x'y"}],
)
def test_a_vend_whose_values_would_break_the_sql_gets_no_cloudtrail_text(field: dict[str, str]) -> None:
    decision = audit_records.read_lines([line(**field)], ask()).decisions[0]
    assert audit_cloudtrail.TrailQuestion.of(decision) is None


def test_a_source_identity_that_is_not_a_name_is_left_out() -> None:
    decision = audit_records.read_lines([line(source_identity="jen'kins")], ask()).decisions[0]
    trail = audit_cloudtrail.TrailQuestion.of(decision)
    assert (
        trail is not None and len(trail.lake_sql()) == 2 and "jen'kins" not in json.dumps(trail.as_json("r"))
    )


def _cloudtrail() -> Any:
    return botocore.session.get_session().create_client(
        "cloudtrail", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )


def _event(name: str, minutes: int, error: str | None = None) -> dict[str, Any]:
    detail = {
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.0.0.7",
        "eventName": name,
        "userIdentity": {"accessKeyId": KEY},
        **({"errorCode": error} if error else {}),
    }
    return {
        "EventId": f"id-{name}",
        "EventName": name,
        "ReadOnly": "false",
        "AccessKeyId": KEY,
        "EventTime": NOW - timedelta(minutes=minutes),
        "EventSource": "ec2.amazonaws.com",
        "Username": "jenkins-i-0abc",
        "Resources": [],
        "CloudTrailEvent": json.dumps(detail),
    }


def test_lookup_events_reads_every_page_by_the_access_key(capsys: Any) -> None:
    trail = audit_cloudtrail.TrailQuestion.of(_vend())
    assert trail is not None
    client = _cloudtrail()
    expected = {
        "LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": KEY}],
        "StartTime": datetime(2026, 12, 1, 20, 49, tzinfo=timezone.utc),
        "EndTime": datetime(2026, 12, 1, 22, 5, tzinfo=timezone.utc),
        "MaxResults": 50,
    }
    with Stubber(client) as stub:
        stub.add_response(
            "lookup_events", {"Events": [_event("RunInstances", 9)], "NextToken": "t1"}, expected
        )
        stub.add_response(
            "lookup_events",
            {"Events": [_event("TerminateInstances", 8, "UnauthorizedOperation\x1b[31m")]},
            {**expected, "NextToken": "t1"},
        )
        audit_output.print_trail(client, trail)
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "LookupEvents (eu-west-1), 2 events:" in out
    assert "RunInstances" in out and "UnauthorizedOperation\\x1b[31m" in out and "\x1b" not in out


def test_insights_is_polled_until_complete_with_progress_and_read_like_a_file() -> None:
    client = botocore.session.get_session().create_client(
        "logs", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )
    question = ask(role=READ_ONLY)
    rows = [
        [{"field": "@timestamp", "value": "2026-12-01 20:52:00.000"}, {"field": "@message", "value": m}]
        for m in (LINES[1], LINES[2], LINES[0], "garbage")
    ]
    progress: list[str] = []
    with Stubber(client) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "q-1"},
            {
                "logGroupName": "/aws/lambda/stsvend-prod",
                "startTime": int(question.since.timestamp()),
                "endTime": int(question.until.timestamp()) + 1,
                "queryString": question.insights_query(),
                "limit": audit_query.INSIGHTS_LIMIT,
            },
        )
        stub.add_response(
            "get_query_results",
            {"status": "Running", "results": [], "statistics": {"recordsScanned": 1200.0}},
            {"queryId": "q-1"},
        )
        stub.add_response(
            "get_query_results",
            {"status": "Complete", "results": rows, "statistics": {"recordsScanned": 4000.0}},
            {"queryId": "q-1"},
        )
        reading = audit_query.read_insights(
            client, "/aws/lambda/stsvend-prod", question, progress=progress.append, sleep=lambda s: None
        )
        stub.assert_no_pending_responses()
    # The query's own filter is not trusted: the deployer vend it returned is dropped again.
    assert [d.request_id[:8] for d in reading.decisions] == ["0badf00d", "5ca1ab1e"]
    assert reading.skipped == 1
    assert progress == [
        "Logs Insights: Running, 1,200 records scanned, 0 s",
        "Logs Insights: Complete, 4,000 records scanned, 0 s",
    ]


def test_insights_past_its_deadline_is_stopped() -> None:
    client = botocore.session.get_session().create_client(
        "logs", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )
    clock = iter(range(0, 1000, 10))
    with Stubber(client) as stub:
        stub.add_response("start_query", {"queryId": "q-2"})
        stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q-2"})
        stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q-2"})
        stub.add_response("stop_query", {"success": True}, {"queryId": "q-2"})
        with pytest.raises(CommandError, match="QueryTimedOut: .* did not finish within 15 s"):
            audit_query.read_insights(
                client,
                "g",
                ask(),
                deadline_seconds=15,
                sleep=lambda s: None,
                clock=lambda: float(next(clock)),
            )
        stub.assert_no_pending_responses()


def test_audit_trail_runs_lookup_events_for_each_vend_of_the_answer(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The command end to end on a file, with CloudTrail's answers from the Stubber."""
    from stsvend.cli import main

    log = tmp_path / "api.log"
    now = datetime.now(timezone.utc)
    stamp = (now - timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S,000+0000")
    log.write_text(json.dumps({**json.loads(LINES[0]), "timestamp": stamp}) + "\n")
    client = _cloudtrail()
    stub = Stubber(client)
    stub.add_response("lookup_events", {"Events": [_event("DescribeInstances", 1)]})
    monkeypatch.setattr(common.Aws, "client", lambda self, service: client)
    with stub:
        assert main(["audit", "--log", str(log), "--trail", "--since", "1h"]) == 0
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "LookupEvents (eu-west-1), 1 events:" in out and "DescribeInstances" in out
    assert main(["audit", "--log", str(log), "--trail", "--format", "json"]) == 2
    assert main(["audit", "--log", str(log), "--deadline", "0"]) == 2
    assert main(["audit", "--log", str(tmp_path / "missing.log")]) == 1
    assert "cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "caller",
    [JENKINS, "arn:aws:iam::111111111111:role/ci,build", "arn:aws:iam::111111111111:user/a=b+c@d.e_f-g"],
)
def test_the_caller_tag_value_is_the_one_the_service_stamps(caller: str) -> None:
    from chalicelib.vending import service_tag_value

    assert common.caller_tag_value(caller) == service_tag_value(caller)


def test_roles_and_whoami_decisions_are_answered_by_request_id_and_code(capsys: Any) -> None:
    probe_id = "fee1dead-1234-4bcd-9876-0123456789ab"
    lines = [
        line("roles.listed", 9, request_id="a11ce000-1234-4bcd-9876-0123456789ab", role_arn=None),
        line("whoami.denied", 8, request_id=probe_id, code="NotAuthenticated", role_arn=None),
        line("credentials.denied", 7, request_id="0badf00d-1234-4bcd-9876-0123456789ab",
             code="NotAuthenticated"),
    ]
    by_id = audit_records.read_lines(lines, ask(request_id=probe_id)).decisions
    assert [(d.event, d.code) for d in by_id] == [("whoami.denied", "NotAuthenticated")]
    denied = audit_records.read_lines(lines, ask(code="NotAuthenticated")).decisions
    assert [d.request_id[:8] for d in denied] == ["fee1dead", "0badf00d"]
    everything = audit_records.read_lines(lines, ask()).decisions
    print("\n".join(audit_output.table(audit_output.decision_rows(everything))))
    out = capsys.readouterr().out.splitlines()
    assert "listed roles" in out[1] and "denied NotAuthenticated (whoami)" in out[2]
    assert "denied NotAuthenticated" in out[3] and "(" not in out[3].split("NotAuthenticated")[1][:3]


@pytest.mark.parametrize(
    ("option", "asked", "requests"),
    [
        ("--caller", "arn:aws:iam::111111111111:user/Jenkins", ["c0ffee00", "0badf00d"]),
        ("--caller", "arn:aws:iam::111111111111:user/jEnKiNs", ["c0ffee00", "0badf00d"]),
        ("--caller", "arn:aws:sts::111111111111:assumed-role/Read-Only/i-0abc", []),
        ("--caller", "arn:aws:iam::111111111111:user/SAMPLE-app", ["5ca1ab1e"]),
        ("--role", "arn:aws:iam::111111111111:role/Read-Only", ["0badf00d", "5ca1ab1e"]),
        ("--role", "arn:aws:iam::222222222222:role/DEPLOYER", ["c0ffee00"]),
    ],
)
def test_a_caller_or_role_is_matched_as_grants_match_it_ignoring_case(
    option: str, asked: str, requests: list[str], tmp_path: Any, capsys: Any
) -> None:
    """`audit --caller ...:user/Jenkins` answers for the vends of user/jenkins: IAM names are unique
    regardless of case, and grants match callers ignoring it (ASCII case only)."""
    from stsvend.cli import main

    log = tmp_path / "api.log"
    log.write_text("\n".join(LINES) + "\n")
    assert (
        main(
            ["audit", "--log", str(log), option, asked, "--since", "2026-11-30T20:00:00Z", "--format", "json"]
        )
        == 0
    )
    answered = [
        json.loads(x)["request_id"][:8] for x in capsys.readouterr().out.splitlines() if x.startswith("{")
    ]
    assert answered == requests


def test_a_lookalike_of_the_caller_in_the_log_is_not_the_caller() -> None:
    kelvin = line(caller_principal="arn:aws:iam::111111111111:user/\u212aate")
    kate = ask(caller="arn:aws:iam::111111111111:user/kate")
    assert audit_records.read_lines([kelvin], kate).decisions == []


def test_the_insights_query_asks_for_the_caller_and_role_in_any_case() -> None:
    question = ask(
        caller="arn:aws:iam::111111111111:user/Jenkins", role="arn:aws:iam::222222222222:role/Deployer"
    )
    query = question.insights_query().split("\n| ")
    assert 'filter tolower(caller_principal) = "arn:aws:iam::111111111111:user/jenkins"' in query
    assert 'filter tolower(role_arn) = "arn:aws:iam::222222222222:role/deployer"' in query


def test_issuer_document_lines_are_neither_decisions_nor_malformed() -> None:
    """The identity-provider mode logs one line per public document served: not a decision, and
    not counted as a malformed audit record either."""
    now = datetime.now(timezone.utc)
    line = json.dumps({"event": PUBLISHED, "request_id": "r-1", "document": "jwks", "status": 200,
                       "timestamp": now.isoformat()})
    reading = audit_records.read_lines([line, '{"event": "credentials.vended"}'], audit_query.Question(
        since=now - timedelta(minutes=1), until=now + timedelta(minutes=1)))
    assert reading.decisions == [] and reading.skipped == 1
