"""The one timestamp format: UTC to the second, ASCII digits only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.timestamps import format_timestamp, parse_timestamp


def test_a_timestamp_round_trips_in_utc() -> None:
    moment = datetime(2027, 6, 30, 2, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2027-06-30T00:00:05Z"
    assert parse_timestamp("2027-06-30T00:00:05Z") == moment


def test_a_timestamp_is_cut_to_the_second_and_its_year_is_four_digits() -> None:
    late = datetime(2027, 6, 30, 0, 0, 5, 999999, tzinfo=timezone.utc)
    assert format_timestamp(late) == "2027-06-30T00:00:05Z"
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert format_timestamp(early) == "0999-01-02T03:04:05Z"
    assert parse_timestamp(format_timestamp(early)) == early


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff17-06-30T00:00:00Z",  # full-width digits, which strptime would take
        "2027-06-30T00:00:00Z\n",
        "2027-06-30T00:00:00",
        "2027-06-30T00:00:00+00:00",
        "2027-6-30T00:00:00Z",
        "2027-02-30T00:00:00Z",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)
