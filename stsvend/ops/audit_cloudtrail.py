"""What CloudTrail holds about one vend: the LookupEvents command and the CloudTrail Lake and Athena
SQL that find everything the vended credentials did, and LookupEvents itself (`audit --trail`).
Every value that goes into the text was checked when the question was built."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from stsvend.arns import SESSION_NAME
from stsvend.ops import common
from stsvend.ops.audit_records import MAX_LINE_CHARS, Decision, iso_time, log_time

_SOURCE_IDENTITY = re.compile(rf"^{SESSION_NAME}$")
LOOKUP_PAGES = 20  # LookupEvents: 50 events a page, 2 calls a second per account and region


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
        stamp = decision.fields.get("expiration")
        expiration = log_time(stamp) or iso_time(stamp)
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
