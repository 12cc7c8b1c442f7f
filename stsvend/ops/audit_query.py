"""The question `stsvend audit` asks (who received what, one request, one key, denials by code)
and the same question as a CloudWatch Logs Insights query, run against a deployed stage's log group.
Every value in the query was checked to hold no quote; the rows that come back are read and matched
again as a file's lines are (stsvend.ops.audit_records)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stsvend.arns import principal_matches
from stsvend.ops import common
from stsvend.ops.audit_records import Decision, Reading, read_rows
from stsvend.ops.definitions import AUDIT_EVENTS

INSIGHTS_LIMIT = 10_000  # Logs Insights returns at most 10,000 rows per query


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
