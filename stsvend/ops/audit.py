"""`stsvend audit`: ask the audit lines who received credentials for a role, what a caller received,
the decision for a request id, every decision for an access key id, denials by code — from the local
stack's log file or a deployed stage's log group (CloudWatch Logs Insights) — and, for each vend,
what CloudTrail holds about everything those credentials did.

Every audit line is untrusted input: a line that is not a well-formed audit record is skipped and
counted, every value is checked before it goes into a command or SQL text, and every value printed
has its control characters escaped.

This module is the command (its arguments, where the lines come from); the rest, by concern:
audit_records.py (reading and checking audit lines), audit_query.py (the question and its Logs
Insights query), audit_cloudtrail.py (what CloudTrail holds about a vend), audit_output.py (the
table and JSON)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stsvend.checkout.checkout import Checkout
from stsvend.errors import CommandError
from stsvend.ops import common
from stsvend.ops.audit_output import print_json, print_table, print_trail
from stsvend.ops.audit_query import INSIGHTS_LIMIT, Question, read_insights
from stsvend.ops.audit_records import Reading, read_file
from stsvend.terminal import printable

DEFAULT_SINCE = "24h"
MAX_DEADLINE_SECONDS = 900
_LOG_GROUP = re.compile(r"[A-Za-z0-9._/#-]{1,512}")


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
    # The text quotes Logs Insights' status: escaped, so the one \r that rewrites the line is ours.
    print(f"\r{printable(text)}", end="", file=sys.stderr, flush=True)


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
