"""`stsvend console`'s choices without a server: the federation endpoint and console per partition
and region, the override's limits, and when SessionDuration is sent."""

from __future__ import annotations

import pytest

from stsvend.client.console import console_seconds, endpoints
from stsvend.errors import CommandError

ROLE = "arn:aws:iam::111111111111:role/r"


@pytest.mark.parametrize(
    ("role", "region", "federation", "console"),
    [
        (
            ROLE,
            "us-east-1",
            "https://signin.aws.amazon.com/federation",
            "https://console.aws.amazon.com/console/home?region=us-east-1",
        ),
        (
            ROLE,
            "eu-west-1",
            "https://eu-west-1.signin.aws.amazon.com/federation",
            "https://console.aws.amazon.com/console/home?region=eu-west-1",
        ),
        (
            ROLE,
            None,
            "https://signin.aws.amazon.com/federation",
            "https://console.aws.amazon.com/console/home",
        ),
        (
            "arn:aws-us-gov:iam::111111111111:role/r",
            "us-gov-west-1",
            "https://signin.amazonaws-us-gov.com/federation",
            "https://console.amazonaws-us-gov.com/console/home?region=us-gov-west-1",
        ),
        (
            "arn:aws-cn:iam::111111111111:role/r",
            "cn-north-1",
            "https://signin.amazonaws.cn/federation",
            "https://console.amazonaws.cn/console/home?region=cn-north-1",
        ),
        (
            ROLE,
            "x.evil.example/",
            "https://signin.aws.amazon.com/federation",
            "https://console.aws.amazon.com/console/home",
        ),
    ],
)
def test_the_endpoint_is_the_partitions(role: str, region: str | None, federation: str, console: str) -> None:
    assert endpoints(role, region, {}) == (federation, console)


@pytest.mark.parametrize(
    "override", ["http://signin.example/federation", "ftp://127.0.0.1/f", "https://x/f?a=b", "http:///f"]
)
def test_the_override_is_https_or_loopback(override: str) -> None:
    with pytest.raises(CommandError):
        endpoints(ROLE, None, {"STSVEND_FEDERATION_URL": override})
    assert endpoints(ROLE, None, {"STSVEND_FEDERATION_URL": "http://127.0.0.1:5000/federation"})[0] == (
        "http://127.0.0.1:5000/federation"
    )


def test_a_role_that_is_not_an_arn_is_refused() -> None:
    with pytest.raises(CommandError):
        endpoints("arn:aws-iso:iam::111111111111:role/r", None, {})


def test_session_duration_only_past_the_chained_hour() -> None:
    now = 1_800_000_000.0

    def expiring_in(seconds: int) -> dict[str, str]:
        from datetime import datetime, timezone

        moment = datetime.fromtimestamp(now + seconds, timezone.utc)
        return {"Expiration": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}

    assert console_seconds(expiring_in(3600), now) is None
    assert console_seconds(expiring_in(7200), now) == 7200
    assert console_seconds(expiring_in(43200), now) == 43200
    assert console_seconds(expiring_in(50000), now) == 43200
