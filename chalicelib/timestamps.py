"""The one timestamp format of the service: UTC to the second, as grants, answers and logs write it."""

from __future__ import annotations

import re
from datetime import datetime, timezone

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# strptime's %Y and %d accept any Unicode digit (full-width "２０２７" too): check ASCII first.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def format_timestamp(moment: datetime) -> str:
    # TIMESTAMP_FORMAT written by isoformat: in UTC it always ends in +00:00, and it pads a year to
    # four digits as parsing expects (strftime's %Y does not, below 1000).
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").removesuffix("+00:00") + "Z"


def parse_timestamp(text: str) -> datetime:
    """A UTC time like 2027-06-30T00:00:00Z; ValueError for anything else."""
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"not a UTC time like 2027-06-30T00:00:00Z: {text[:40]!r}")
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
