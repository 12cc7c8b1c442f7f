"""`stsvend audit`: ask the audit lines who received credentials for a role, what a caller received,
the decision for a request id, every decision for an access key id, denials by code — from the local
stack's log file or a deployed stage's log group (CloudWatch Logs Insights) — and, for each vend,
what CloudTrail holds about everything those credentials did.

Every audit line is untrusted input: a line that is not a well-formed audit record is skipped and
counted, every value is checked before it goes into a command or SQL text, and every value printed
has its control characters escaped."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stsvend.arns import SESSION_NAME, principal_matches
from stsvend.checkout.checkout import Checkout
from stsvend.errors import CommandError
from stsvend.ops import common
from stsvend.ops.definitions import AUDIT_EVENTS, PUBLISHED_EVENT
from stsvend.terminal import printable

MAX_LINE_CHARS = 65_536
INSIGHTS_LIMIT = 10_000  # Logs Insights returns at most 10,000 rows per query
DEFAULT_SINCE = "24h"
MAX_DEADLINE_SECONDS = 900
CLOUDTRAIL_SHOWN = 10  # vends whose CloudTrail queries are printed; narrow the question for others
LOOKUP_PAGES = 20  # LookupEvents: 50 events a page, 2 calls a second per account and region
_SOURCE_IDENTITY = re.compile(rf"^{SESSION_NAME}$")
_LOG_GROUP = re.compile(r"[A-Za-z0-9._/#-]{1,512}")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S,%f%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f%z")
# Fields of a record and the type each must have; anything else makes the line unreadable.
_TEXT_FIELDS = (
    "request_id",
    "caller_arn",
    "caller_principal",
    "caller_account",
    "role_arn",
    "code",
    "reason",
    "access_key_id",
    "source_ip",
    "source_identity",
    "role_session_name",
    "expiration",
)


@dataclass(frozen=True)
class Decision:
    time: datetime
    event: str
    request_id: str
    caller: str
    role_arn: str
    code: str
    access_key_id: str
    fields: dict[str, Any] = field(repr=False)

    @property
    def vended(self) -> bool:
        return self.event == "credentials.vended"

    @property
    def denied(self) -> bool:
        return self.event.endswith(".denied")

    @property
    def outcome(self) -> str:
        """What the table shows: vended, denied CODE, or what a read-only route answered."""
        if self.denied:
            return f"denied {self.code}" + ("" if self.event == "credentials.denied" else f" ({self.route})")
        return {"credentials.vended": "vended", "roles.listed": "listed roles"}.get(self.event, "whoami")

    @property
    def route(self) -> str:
        return self.event.split(".", 1)[0]

    def as_json(self) -> dict[str, Any]:
        shown = {k: self.fields[k] for k in _TEXT_FIELDS if self.fields.get(k) is not None}
        if isinstance(self.fields.get("duration_seconds"), int):
            shown["duration_seconds"] = self.fields["duration_seconds"]
        tags = self.fields.get("tags")
        if isinstance(tags, dict):
            shown["tags"] = tags
        return {"time": common.utc_text(self.time), "event": self.event, **shown}


@dataclass(frozen=True)
class Question:
    since: datetime
    until: datetime
    request_id: str | None = None
    access_key_id: str | None = None
    caller: str | None = None
    role: str | None = None
    code: str | None = None

    def matches(self, d: Decision) -> bool:
        return (
            self.since <= d.time <= self.until
            and (self.request_id is None or d.request_id == self.request_id)
            and (self.access_key_id is None or d.access_key_id == self.access_key_id)
            # As grants match callers: IAM names are unique regardless of case (ASCII case only).
            and (self.caller is None or principal_matches(self.caller, d.caller))
            and (self.role is None or principal_matches(self.role, d.role_arn))
            and (self.code is None or (d.denied and d.code == self.code))
        )

    def insights_query(self) -> str:
        """The same question for Logs Insights. Every value was checked to hold no quote."""
        events = ", ".join(f'"{e}"' for e in AUDIT_EVENTS)
        lines = ["fields @timestamp, @message", f"filter event in [{events}]"]
        for name, value in (("request_id", self.request_id), ("access_key_id", self.access_key_id)):
            if value is not None:
                lines.append(f'filter {name} = "{value}"')
        # ARNs ignoring case, as above (Logs Insights' tolower; the rows are matched again here).
        for name, value in (("caller_principal", self.caller), ("role_arn", self.role)):
            if value is not None:
                lines.append(f'filter tolower({name}) = "{value.lower()}"')
        if self.code is not None:
            lines.append(f'filter event like /[.]denied$/ and code = "{self.code}"')
        lines += ["sort @timestamp asc", f"limit {INSIGHTS_LIMIT}"]
        return "\n| ".join(lines)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    for form in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(value, form)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def parse_record(record: Any, timestamp: Any = None) -> Decision | None:
    """A decision from one audit record, or None if it is not a well-formed one."""
    if not isinstance(record, dict) or record.get("event") not in AUDIT_EVENTS:
        return None
    if any(record.get(k) is not None and not isinstance(record[k], str) for k in _TEXT_FIELDS):
        return None
    when = _time(record.get("timestamp")) or _time(timestamp)
    request = record.get("request_id")
    if when is None or not isinstance(request, str) or not request:
        return None
    return Decision(
        time=when.astimezone(timezone.utc),
        event=record["event"],
        request_id=request,
        caller=record.get("caller_principal") or record.get("caller_arn") or "",
        role_arn=record.get("role_arn") or "",
        code=record.get("code") or "",
        access_key_id=record.get("access_key_id") or "",
        fields=record,
    )


@dataclass
class Reading:
    decisions: list[Decision] = field(default_factory=list)
    skipped: int = 0  # lines that claimed to be audit records but were not well-formed
    truncated: bool = False


def read_lines(lines: Iterable[str], question: Question) -> Reading:
    reading = Reading()
    for line in lines:
        if '"event"' not in line:
            continue  # metrics, other log lines
        if len(line) > MAX_LINE_CHARS:
            reading.skipped += 1
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("event") == PUBLISHED_EVENT:
            continue  # an issuer document served: not a decision
        decision = parse_record(record)
        if decision is None:
            reading.skipped += 1
        elif question.matches(decision):
            reading.decisions.append(decision)
    reading.decisions.sort(key=lambda d: d.time)
    return reading


def read_file(path: Path, question: Question) -> Reading:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return read_lines(handle, question)
    except OSError as exc:
        raise common.failure("CannotRead", f"{path} cannot be read: {exc.strerror}") from None


# --- CloudWatch Logs Insights -------------------------------------------------------------------


def read_insights(
    logs: Any,
    log_group: str,
    question: Question,
    deadline_seconds: float = 120.0,
    progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Reading:
    """Run the question as a Logs Insights query, polled until it completes or the deadline passes
    (then it is stopped). The rows come back as the audit lines themselves and are read like a file."""
    started = clock()
    query_id = logs.start_query(
        logGroupName=log_group,
        startTime=int(question.since.timestamp()),
        endTime=int(question.until.timestamp()) + 1,
        queryString=question.insights_query(),
        limit=INSIGHTS_LIMIT,
    )["queryId"]
    delay = 0.5
    while True:
        answer = logs.get_query_results(queryId=query_id)
        status = answer.get("status")
        scanned = answer.get("statistics", {}).get("recordsScanned", 0)
        if progress is not None:
            progress(f"Logs Insights: {status}, {scanned:,.0f} records scanned, {clock() - started:.0f} s")
        if status == "Complete":
            break
        if status in ("Failed", "Cancelled", "Timeout", "Unknown"):
            raise common.failure("QueryFailed", f"the Logs Insights query on {log_group} ended {status}")
        if clock() - started + delay > deadline_seconds:
            logs.stop_query(queryId=query_id)
            raise common.failure(
                "QueryTimedOut",
                f"the Logs Insights query on {log_group} did not finish within {deadline_seconds:.0f} s"
                " (stopped); narrow it with --since/--until or a filter, or raise --deadline",
            )
        sleep(delay)
        delay = min(delay * 2, 5.0)
    rows = answer.get("results", [])
    reading = read_rows(rows, question)
    reading.truncated = len(rows) >= INSIGHTS_LIMIT
    return reading


def read_rows(rows: list[list[dict[str, str]]], question: Question) -> Reading:
    reading = Reading()
    for row in rows:
        cells = {c.get("field"): c.get("value") for c in row if isinstance(c, dict)}
        message = cells.get("@message")
        if not isinstance(message, str) or len(message) > MAX_LINE_CHARS:
            reading.skipped += 1
            continue
        try:
            decision = parse_record(json.loads(message), cells.get("@timestamp"))
        except ValueError:
            decision = None
        if decision is None:
            reading.skipped += 1
        elif question.matches(decision):  # the same filter as a file, whatever the query did
            reading.decisions.append(decision)
    reading.decisions.sort(key=lambda d: d.time)
    return reading


# --- CloudTrail ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrailQuestion:
    """What CloudTrail can answer about one vend; every value checked before it goes into text."""

    request_id: str
    access_key_id: str
    role_arn: str
    source_identity: str | None
    issued: datetime
    ends: datetime

    @classmethod
    def of(cls, decision: Decision) -> TrailQuestion | None:
        if not (
            decision.vended
            and common.REQUEST_ID.fullmatch(decision.request_id)
            and common.ACCESS_KEY_ID.fullmatch(decision.access_key_id)
            and common.ROLE_ARN.fullmatch(decision.role_arn)
        ):
            return None
        identity = decision.fields.get("source_identity")
        expiration = _time(decision.fields.get("expiration")) or _iso(decision.fields.get("expiration"))
        ends = expiration or decision.time + timedelta(seconds=common.LONGEST_SESSION_SECONDS)
        return cls(
            decision.request_id,
            decision.access_key_id,
            decision.role_arn,
            identity if isinstance(identity, str) and _SOURCE_IDENTITY.fullmatch(identity) else None,
            decision.time,
            min(ends, decision.time + timedelta(seconds=common.LONGEST_SESSION_SECONDS)),
        )

    @property
    def window(self) -> tuple[str, str]:
        # CloudTrail records an event up to 15 minutes after the call; the session ends at `ends`.
        return _sql_time(self.issued - timedelta(minutes=1)), _sql_time(self.ends + timedelta(minutes=15))

    def lookup_events(self, region: str) -> str:
        start, end = (t.replace(" ", "T") + "Z" for t in self.window)
        return (
            f"aws cloudtrail lookup-events --region {region} --lookup-attributes"
            f" AttributeKey=AccessKeyId,AttributeValue={self.access_key_id}"
            f" --start-time {start} --end-time {end}"
        )

    # Every value below was checked when the question was built (no quote can be in it), so the
    # text is safe to paste into a query editor.
    def lake_sql(self) -> list[str]:
        start, end = self.window
        where = f"eventTime >= '{start}' AND eventTime <= '{end}'"
        source = "FROM EVENT_DATA_STORE_ID WHERE"
        queries = [
            f"SELECT eventTime, recipientAccountId, awsRegion, element_at(responseElements, 'credentials')"
            f" AS credentials {source} eventSource = 'sts.amazonaws.com' AND eventName = 'AssumeRole'"
            f" AND element_at(requestParameters, 'tags') LIKE '%{self.request_id}%' AND {where}",
            f"SELECT eventTime, recipientAccountId, awsRegion, eventSource, eventName, errorCode,"
            f" sourceIPAddress {source} userIdentity.accessKeyId = '{self.access_key_id}'"
            f" AND {where} ORDER BY eventTime",
        ]
        if self.source_identity:
            queries.append(
                f"SELECT eventTime, recipientAccountId, userIdentity.accessKeyId, eventSource, eventName,"
                f" errorCode {source} userIdentity.sessionContext.sourceIdentity ="
                f" '{self.source_identity}' AND {where} ORDER BY eventTime"
            )
        return queries

    def athena_sql(self) -> list[str]:
        start, end = (t.replace(" ", "T") + "Z" for t in self.window)
        where = f"eventtime >= '{start}' AND eventtime <= '{end}'"
        source = "FROM cloudtrail_logs WHERE"
        queries = [
            f"SELECT eventtime, recipientaccountid, json_extract_scalar(responseelements,"
            f" '$.credentials.accessKeyId') AS access_key_id {source} eventsource ="
            f" 'sts.amazonaws.com' AND eventname = 'AssumeRole' AND requestparameters LIKE"
            f" '%{self.request_id}%' AND {where}",
            f"SELECT eventtime, recipientaccountid, awsregion, eventsource, eventname, errorcode"
            f" {source} useridentity.accesskeyid = '{self.access_key_id}' AND {where}"
            f" ORDER BY eventtime",
        ]
        if self.source_identity:
            queries.append(
                f"SELECT eventtime, recipientaccountid, useridentity.accesskeyid, eventsource, eventname"
                f" {source} useridentity.sessioncontext.sourceidentity ="
                f" '{self.source_identity}' AND {where} ORDER BY eventtime"
            )
        return queries

    def as_json(self, region: str) -> dict[str, Any]:
        return {
            "lookup_events": self.lookup_events(region),
            "cloudtrail_lake_sql": self.lake_sql(),
            "athena_sql": self.athena_sql(),
        }


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _sql_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def lookup_events(cloudtrail: Any, trail: TrailQuestion) -> Iterator[dict[str, str]]:
    """CloudTrail's LookupEvents by the vend's access key id, in the client's region."""
    start, end = trail.window
    token: str | None = None
    for _ in range(LOOKUP_PAGES):
        page = cloudtrail.lookup_events(
            LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": trail.access_key_id}],
            StartTime=datetime.fromisoformat(start).replace(tzinfo=timezone.utc),
            EndTime=datetime.fromisoformat(end).replace(tzinfo=timezone.utc),
            MaxResults=50,
            **({"NextToken": token} if token else {}),
        )
        for event in page.get("Events", []):
            yield _trail_row(event)
        token = page.get("NextToken")
        if not token:
            return


def _trail_row(event: dict[str, Any]) -> dict[str, str]:
    detail: dict[str, Any] = {}
    raw = event.get("CloudTrailEvent")
    if isinstance(raw, str) and len(raw) <= MAX_LINE_CHARS:
        try:
            loaded = json.loads(raw)
            detail = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            detail = {}
    when = event.get("EventTime")
    return {
        "time": common.utc_text(when) if isinstance(when, datetime) else str(when or ""),
        "source": str(event.get("EventSource") or ""),
        "event": str(event.get("EventName") or ""),
        "region": str(detail.get("awsRegion") or ""),
        "error": str(detail.get("errorCode") or "-"),
        "source_ip": str(detail.get("sourceIPAddress") or ""),
    }


# --- output ---------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> list[str]:
    cells = [[printable(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def decision_rows(decisions: list[Decision]) -> list[list[str]]:
    rows = [["TIME", "DECISION", "CALLER", "ROLE", "REQUEST_ID", "ACCESS_KEY_ID"]]
    for d in decisions:
        rows.append(
            [
                common.utc_text(d.time),
                d.outcome,
                d.caller or "-",
                d.role_arn or "-",
                d.request_id,
                d.access_key_id or "-",
            ]
        )
    return rows


def print_table(
    decisions: list[Decision], region: str, trail: Callable[[TrailQuestion], None] | None
) -> None:
    if not decisions:
        print("No decisions match.")
        return
    for line in table(decision_rows(decisions)):
        print(line)
    vends = [q for q in (TrailQuestion.of(d) for d in decisions if d.vended) if q is not None]
    for index, question in enumerate(vends):
        if index == CLOUDTRAIL_SHOWN:
            print(f"\n({len(vends) - CLOUDTRAIL_SHOWN} more vends: ask about one with --request-id.)")
            break
        print(
            f"\nCloudTrail, request {question.request_id} ({question.role_arn}, access key"
            f" {question.access_key_id}), in the role's account and the region the calls were made in:"
        )
        print(f"  {question.lookup_events(region)}")
        print("  CloudTrail Lake:")
        for sql in question.lake_sql():
            print(f"    {sql};")
        print("  Athena (the trail's table):")
        for sql in question.athena_sql():
            print(f"    {sql};")
        if trail is not None:
            trail(question)


def print_trail(cloudtrail: Any, question: TrailQuestion) -> None:
    rows = [["TIME", "SOURCE", "EVENT", "REGION", "ERROR", "SOURCE_IP"]]
    rows += [
        [r["time"], r["source"], r["event"], r["region"], r["error"], r["source_ip"]]
        for r in lookup_events(cloudtrail, question)
    ]
    region = cloudtrail.meta.region_name
    if len(rows) == 1:
        print(
            f"  LookupEvents ({region}): no events for {question.access_key_id} (yet: CloudTrail delivers"
            " within about 15 minutes; other regions and accounts are not searched)"
        )
        return
    print(f"  LookupEvents ({region}), {len(rows) - 1} events:")
    for line in table(rows):
        print(f"    {line}")


def print_json(decisions: list[Decision], region: str) -> None:
    for decision in decisions:
        record = decision.as_json()
        trail = TrailQuestion.of(decision)
        if trail is not None:
            record["cloudtrail"] = trail.as_json(region)
        # ensure_ascii: control characters from the log come out as \u escapes.
        print(json.dumps(record, ensure_ascii=True, sort_keys=True))


# --- the command ------------------------------------------------------------------------------------


def question_from(args: argparse.Namespace, now: datetime) -> Question:
    since = common.parse_time(args.since or DEFAULT_SINCE, "--since", now)
    until = common.parse_time(args.until, "--until", now) if args.until else now
    if since >= until:
        raise common.bad_input("--since must be before --until")
    return Question(
        since=since,
        until=until,
        request_id=common.request_id(args.request_id) if args.request_id else None,
        access_key_id=common.access_key_id(args.access_key_id) if args.access_key_id else None,
        caller=common.caller_arn(args.caller) if args.caller else None,
        role=common.role_arn(args.role) if args.role else None,
        code=common.denial_code(args.code) if args.code else None,
    )


def cmd_audit(args: argparse.Namespace) -> int:
    return common.run(_audit, args)


def _region(aws: common.Aws | None) -> str:
    if aws is not None and aws.local is not None:
        return str(aws.local["region"])
    try:
        return common.region()
    except CommandError:
        return "REGION"  # the printed command shows where to put it


def gather(args: argparse.Namespace, question: Question) -> tuple[Reading, common.Aws | None]:
    """The decisions from the source the arguments name."""
    sources = [s for s in (args.log, args.stage, args.log_group) if s]
    if len(sources) != 1:
        raise common.bad_input("name one source: --log FILE, --stage STAGE or --log-group NAME")
    if args.log:
        return read_file(Path(args.log), question), None
    if args.stage == common.LOCAL_STAGE:
        state = common.local_state(common.find_checkout(args.root))
        return read_file(Path(state["logs"]["api"]), question), common.Aws(state)
    if args.log_group:
        if not _LOG_GROUP.fullmatch(args.log_group):
            raise common.bad_input(f"--log-group is not a log group name: {args.log_group!r}")
        group = args.log_group
    else:
        checkout = Checkout.open(args.root)
        group = common.stage_names(checkout, common.stage_name(args.stage)).log_group
    aws = common.Aws()
    reading = read_insights(aws.client("logs"), group, question, args.deadline, _progress)
    print(file=sys.stderr)
    return reading, aws


def _progress(text: str) -> None:
    print(f"\r{text}", end="", file=sys.stderr, flush=True)


def _audit(args: argparse.Namespace) -> int:
    question = question_from(args, datetime.now(timezone.utc))
    if not 0 < args.deadline <= MAX_DEADLINE_SECONDS:
        raise common.bad_input(f"--deadline must be more than 0 and at most {MAX_DEADLINE_SECONDS} seconds")
    if args.trail and args.format != "table":
        raise common.bad_input("--trail prints CloudTrail's events as a table: use it with --format table")
    reading, aws = gather(args, question)
    if reading.skipped:
        print(
            f"stsvend: {reading.skipped} line(s) that claim to be audit records are malformed; skipped",
            file=sys.stderr,
        )
    if reading.truncated:
        print(
            f"stsvend: Logs Insights stopped at {INSIGHTS_LIMIT:,} rows; narrow the question", file=sys.stderr
        )
    region = _region(aws)
    if args.format == "json":
        print_json(reading.decisions, region)
        return 0
    trail = None
    if args.trail:
        cloudtrail = (aws or common.Aws()).client("cloudtrail")
        trail = lambda q: print_trail(cloudtrail, q)  # noqa: E731 - a one-line callback
    print_table(reading.decisions, region, trail)
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="ask the audit log: who got what, one request, one key, denials")
    source = parser.add_argument_group("source (one of)")
    source.add_argument(
        "--log", metavar="FILE", help="an audit log file (the local stack: .stsvend/logs/api.log)"
    )
    source.add_argument(
        "--stage", help="a deployed stage's log group, through Logs Insights; local: the local stack"
    )
    source.add_argument(
        "--log-group", help="this log group, through Logs Insights (a CloudFormation stack's)"
    )
    parser.add_argument("--request-id", help="the decision for one request (the RequestId of an answer)")
    parser.add_argument("--access-key-id", help="every decision for one vended access key id")
    parser.add_argument("--caller", metavar="ARN", help="what one caller asked for and received")
    parser.add_argument("--role", metavar="ARN", help="who asked for and received this role")
    parser.add_argument("--code", help="denials with this code (e.g. AssumeRoleDenied)")
    parser.add_argument("--since", help=f"15m, 2h, 7d or an ISO 8601 time (default {DEFAULT_SINCE})")
    parser.add_argument("--until", help="15m, 2h, 7d or an ISO 8601 time (default now)")
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="json: one object a line"
    )
    parser.add_argument(
        "--trail", action="store_true", help="also run CloudTrail LookupEvents by each vend's access key id"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up on a Logs Insights query after this long (default 120)",
    )
    parser.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")
