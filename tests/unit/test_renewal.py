"""When RenewingCredentials vends again, with a controlled clock."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from stsvend.client.renewal import RETRY_AFTER_FAILURE_SECONDS, RenewingCredentials, check_window
from stsvend.errors import CommandError

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Vendor:
    """Vends answers of `lifetime` seconds from the clock's now, numbered; or fails when told."""

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.failing = False
        self.refusal: CommandError | None = None

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.refusal is not None:
            raise self.refusal
        if self.failing:
            raise CommandError("ServiceUnreachable", "cannot connect", 4)
        expiration = datetime.fromtimestamp(self.clock.now + self.lifetime, timezone.utc)
        return {"AccessKeyId": f"ASIA{self.calls:016d}", "SecretAccessKey": "s", "SessionToken": "t",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}


def renewing(lifetime: float, window: float | None) -> tuple[RenewingCredentials, Vendor, Clock, list[str]]:
    clock = Clock()
    vendor = Vendor(clock, lifetime)
    warnings: list[str] = []
    return RenewingCredentials(vendor, window, clock=clock, warn=warnings.append), vendor, clock, warnings


@pytest.mark.parametrize(
    ("lifetime", "renews_after"),
    [(3600, 3600 - 16 * 60), (2400, 2400 - 16 * 60), (1800, 900), (900, 450)],
)
def test_automatic_window_is_16_minutes_but_at_most_half_the_life(
    lifetime: float, renews_after: float
) -> None:
    credentials, vendor, clock, _ = renewing(lifetime, None)
    first = credentials.current()["AccessKeyId"]
    clock.now = START + renews_after - 1
    assert credentials.current()["AccessKeyId"] == first
    clock.now = START + renews_after
    assert credentials.current()["AccessKeyId"] != first
    assert vendor.calls == 2


def test_explicit_window_renews_when_reached() -> None:
    credentials, vendor, clock, _ = renewing(900, 895)
    credentials.current()
    clock.now = START + 4
    credentials.current()
    assert vendor.calls == 1
    clock.now = START + 5
    credentials.current()
    assert vendor.calls == 2


def test_a_failed_renewal_serves_the_valid_credentials_warns_and_waits_before_trying_again() -> None:
    credentials, vendor, clock, warnings = renewing(900, 600)
    first = credentials.current()["AccessKeyId"]
    vendor.failing = True
    clock.now = START + 400

    assert credentials.current()["AccessKeyId"] == first
    assert credentials.current()["AccessKeyId"] == first
    assert vendor.calls == 2  # not on every request
    assert len(warnings) == 1 and "ServiceUnreachable" in warnings[0] and "500 s more" in warnings[0]

    clock.now = START + 400 + RETRY_AFTER_FAILURE_SECONDS
    vendor.failing = False
    assert credentials.current()["AccessKeyId"] != first
    assert vendor.calls == 3


@pytest.mark.parametrize(
    ("code", "exit_status"),
    [("CallerNotAllowed", 3), ("AssumeRoleDenied", 3), ("InvalidAnswer", 1), ("InvalidRequest", 2)],
)
def test_a_refused_renewal_is_raised_and_the_current_credentials_are_not_served_again(
    code: str, exit_status: int
) -> None:
    """Only an outage is covered by the still-valid credentials: after a denial (a grant removed in
    an incident, a role that no longer trusts the service) nothing more is handed out."""
    credentials, vendor, clock, warnings = renewing(900, 600)
    credentials.current()
    clock.now = START + 400
    vendor.refusal = CommandError(code, "refused", exit_status)
    for _ in range(2):
        with pytest.raises(CommandError) as failure:
            credentials.current()
        assert failure.value.code == code
    assert vendor.calls == 3 and warnings == []


def test_expired_credentials_are_never_served() -> None:
    credentials, vendor, clock, _ = renewing(900, 60)
    credentials.current()
    vendor.failing = True
    clock.now = START + 900
    with pytest.raises(CommandError) as failure:
        credentials.current()
    assert failure.value.code == "ServiceUnreachable"


def test_the_first_failure_is_raised() -> None:
    credentials, vendor, _, _ = renewing(900, None)
    vendor.failing = True
    with pytest.raises(CommandError):
        credentials.current()


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        renewing(900, -1)


@pytest.mark.parametrize(
    ("window", "duration", "refused"),
    [(None, None, False), (0, 900, False), (899, 900, False), (900, 900, True), (-1, 900, True),
     (3599, None, False), (3600, None, True)],
)
def test_check_window_refuses_windows_that_would_vend_on_every_request(
    window: float | None, duration: int | None, refused: bool
) -> None:
    if refused:
        with pytest.raises(CommandError) as failure:
            check_window(window, duration)
        assert (failure.value.code, failure.value.exit_status) == ("InvalidRequest", 2)
    else:
        check_window(window, duration)


def test_an_outage_is_reported_once_however_many_retries_fail() -> None:
    credentials, vendor, clock, warnings = renewing(900, 600)
    first = credentials.current()["AccessKeyId"]
    vendor.failing = True
    for retry in range(5):
        clock.now = START + 400 + retry * RETRY_AFTER_FAILURE_SECONDS
        assert credentials.current()["AccessKeyId"] == first
    assert vendor.calls == 6 and len(warnings) == 1

    vendor.failing = False  # the service is back: the next outage is reported again
    clock.now += RETRY_AFTER_FAILURE_SECONDS
    renewed = credentials.current()["AccessKeyId"]
    clock.now += 350
    vendor.failing = True
    assert credentials.current()["AccessKeyId"] == renewed
    assert len(warnings) == 2


def test_the_background_renewal_vends_ahead_of_need_without_a_request() -> None:
    """A real clock: 900 s credentials due 0.5 s after each vend; no one asks for them."""
    from stsvend.client.renewal import BackgroundRenewal

    vendor = Vendor(Clock(), 900)
    vendor.clock.now = time.time()
    credentials = RenewingCredentials(vendor, 899.5)
    credentials.current()
    renewal = BackgroundRenewal(credentials).start()
    try:
        deadline = time.monotonic() + 10
        while vendor.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            vendor.clock.now = time.time()
    finally:
        renewal.stop()
    assert vendor.calls >= 3


def test_the_background_renewal_answers_while_a_vend_hangs() -> None:
    release = threading.Event()
    calls = []

    def hanging() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            release.wait(30)
            raise CommandError("ServiceUnreachable", "no answer", 4)
        expiration = datetime.fromtimestamp(time.time() + 900, timezone.utc)
        return {"AccessKeyId": "ASIAFIRSTANSWER00001", "SecretAccessKey": "s", "SessionToken": "t",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}

    from stsvend.client.renewal import BackgroundRenewal

    credentials = RenewingCredentials(hanging, 899.9)
    credentials.current()
    renewal = BackgroundRenewal(credentials).start()
    try:
        while len(calls) < 2:
            time.sleep(0.05)  # the renewal is under way, and hangs
        for _ in range(20):
            assert renewal.answer()["AccessKeyId"] == "ASIAFIRSTANSWER00001"
    finally:
        release.set()
        renewal.stop()
