"""Reading audit lines (`stsvend audit`): each line is untrusted input, a line that is not a
well-formed audit record is skipped and counted, and every field is checked for its type before it
is used. The lines come from a log file or from Logs Insights' rows (stsvend.ops.audit_query)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from stsvend.ops import common
from stsvend.ops.definitions import AUDIT_EVENTS, PUBLISHED_EVENT

MAX_LINE_CHARS = 65_536
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


class Filter(Protocol):
    """Which decisions to keep (stsvend.ops.audit_query.Question)."""

    def matches(self, d: Decision) -> bool: ...


def log_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    for form in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(value, form)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_record(record: Any, timestamp: Any = None) -> Decision | None:
    """A decision from one audit record, or None if it is not a well-formed one."""
    if not isinstance(record, dict) or record.get("event") not in AUDIT_EVENTS:
        return None
    if any(record.get(k) is not None and not isinstance(record[k], str) for k in _TEXT_FIELDS):
        return None
    when = log_time(record.get("timestamp")) or log_time(timestamp)
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


def read_lines(lines: Iterable[str], question: Filter) -> Reading:
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


def read_file(path: Path, question: Filter) -> Reading:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return read_lines(handle, question)
    except OSError as exc:
        raise common.failure("CannotRead", f"{path} cannot be read: {exc.strerror}") from None


def read_rows(rows: list[list[dict[str, str]]], question: Filter) -> Reading:
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
