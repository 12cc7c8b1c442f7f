"""Credentials that are vended again before they expire: what the credentials server of `stsvend
exec` / `stsvend serve` answers with, and what the library's sessions refresh from.

Each renewal is a new signed POST /credentials with the same request (role, duration, tags, session
name), made with the ambient credentials as they are *then* (an instance role's keys rotate too).
The refresh window is the caller's, else automatic: 16 minutes, which is more than botocore's
advisory window (15 minutes) so a botocore client's own refresh finds the new credentials, but
never more than half the credentials' life, so 900 s credentials are used for 7.5 minutes each.
A renewal that fails because the service is unavailable or unreachable, while the current
credentials are still valid, is reported through `warn` once per outage and the current ones are
served; it is tried again after RETRY_AFTER_FAILURE_SECONDS, not on every request. Any other
failure (a denial, a bad answer) is not covered up: the current credentials are dropped and the
failure is raised, as the credential cache does (stsvend.client.commands.obtain_credentials).

`RenewingCredentials.current()` vends in the caller's thread when a renewal is due (the library's
botocore sessions call it from their own refresh). `BackgroundRenewal` renews from a thread of its
own instead, ahead of need, so that its `answer()` (what the credentials endpoint serves) never
waits for the API while the current credentials are valid, however long the API takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from stsvend.client.cache import Answer, parse_expiration
from stsvend.client.calls import vend
from stsvend.errors import EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError

AUTOMATIC_WINDOW_SECONDS = 16 * 60
RETRY_AFTER_FAILURE_SECONDS = 30.0
MAX_DURATION_SECONDS = 3600  # role chaining's limit, so what the service's default duration can be
# With no valid credentials to serve, a request for them starts a renewal, but not more often than this.
RETRY_WHEN_ASKED_SECONDS = 5.0
# How long `BackgroundRenewal.answer()` waits for a renewal when it has no valid credentials.
WAIT_FOR_RENEWAL_SECONDS = 1.0

Vend = Callable[[], Answer]


def check_window(refresh_window: float | None, duration_seconds: int | None) -> None:
    """Refuse a window that is negative or not below the duration (the role's maximum when no
    duration is asked for): credentials due as soon as they are vended would be vended on every
    request."""
    if refresh_window is None:
        return
    if refresh_window < 0:
        raise CommandError("InvalidRequest", "--refresh-window must be 0 or more", EXIT_USAGE)
    duration = duration_seconds or MAX_DURATION_SECONDS
    if refresh_window >= duration:
        raise CommandError(
            "InvalidRequest",
            f"--refresh-window must be below the duration ({duration} s): credentials due for "
            "renewal as soon as they are vended would be vended again on every request",
            EXIT_USAGE,
        )


class RenewingCredentials:
    """The current answer for one credential request; thread-safe. One vend at a time; reading
    the current answer (`valid`) never waits for one."""

    def __init__(
        self,
        vend_once: Vend,
        refresh_window: float | None = None,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        if refresh_window is not None and refresh_window < 0:
            raise ValueError("the refresh window must be 0 or more")
        self._vend = vend_once
        self._window = refresh_window
        self._clock = clock
        self._warn = warn
        self._vending = threading.Lock()  # taken before _lock, never while holding it
        self._lock = threading.Lock()  # the state below
        self._answer: Answer | None = None
        self._expires_at = 0.0
        self._lifetime = 0.0
        self._next_attempt = 0.0
        self._in_outage = False

    @classmethod
    def for_request(
        cls,
        url: str,
        region: str,
        env: Mapping[str, str],
        request: Mapping[str, Any],
        server_id: str,
        refresh_window: float | None = None,
        warn: Callable[[str], None] = lambda message: None,
        source_profile: str | None = None,
    ) -> RenewingCredentials:
        return cls(
            lambda: vend(url, region, env, request, server_id, source_profile), refresh_window, warn=warn
        )

    def current(self) -> Answer:
        """The credentials to hand out now: vended again when due. Raises CommandError when there
        are none valid and vending fails."""
        with self._vending:
            now = self._clock()
            with self._lock:
                if self._answer is not None and self._renewal_at(now) > now:
                    return self._answer
            try:
                answer = self._vend()
            except CommandError as exc:
                return self._failed(exc, self._clock())  # a hung attempt's time counts toward the retry
            with self._lock:
                self._store(answer, now)
                return answer

    def valid(self) -> Answer | None:
        """The current answer if it has not expired, without vending."""
        with self._lock:
            if self._answer is not None and self._clock() < self._expires_at:
                return self._answer
            return None

    def seconds_to_renewal(self) -> float:
        """How long until `current()` would vend: 0 when it would now (also when nothing is valid)."""
        with self._lock:
            now = self._clock()
            if self._answer is None:
                return 0.0
            return max(self._renewal_at(now) - now, 0.0)

    def _renewal_at(self, now: float) -> float:
        """When the current answer is due for renewal: within the window, but not before the retry
        after a failed renewal, and at the latest when it expires."""
        window = self._window
        if window is None:
            window = min(AUTOMATIC_WINDOW_SECONDS, self._lifetime / 2)
        due = self._expires_at - window
        return min(max(due, self._next_attempt), self._expires_at)

    def _failed(self, exc: CommandError, now: float) -> Answer:
        with self._lock:
            if exc.exit_status != EXIT_UNAVAILABLE:
                self._answer, self._expires_at = None, 0.0  # never handed out again
                raise exc
            if self._answer is None or now >= self._expires_at:
                raise exc
            self._next_attempt = now + RETRY_AFTER_FAILURE_SECONDS
            if not self._in_outage:
                # Once per outage: the retries every RETRY_AFTER_FAILURE_SECONDS are not reported.
                self._in_outage = True
                self._warn(
                    f"could not renew the credentials ({exc.code}: {exc.message}); serving the "
                    f"current ones, valid for {int(self._expires_at - now)} s more, and trying again "
                    f"every {RETRY_AFTER_FAILURE_SECONDS:.0f} s without a warning for each"
                )
            return self._answer

    def _store(self, answer: Answer, now: float) -> None:
        expiration = parse_expiration(answer["Expiration"])
        assert expiration is not None  # vend() checks the answer
        self._answer = answer
        self._expires_at = expiration.timestamp()
        self._lifetime = max(self._expires_at - now, 0.0)
        self._next_attempt = 0.0
        self._in_outage = False


class BackgroundRenewal:
    """Renews `credentials` from a thread of its own as they come due (`start()` .. `stop()`).

    `answer()` returns the current credentials while they are valid, at once, whatever the API is
    doing. With none valid (they expired during an outage, or a renewal was refused) it asks the
    thread for a renewal, waits for it at most WAIT_FOR_RENEWAL_SECONDS and otherwise raises the
    last failure. A failure that leaves nothing valid is reported through `warn` once, not for each
    request or retry.
    """

    def __init__(
        self, credentials: RenewingCredentials, warn: Callable[[str], None] = lambda message: None
    ) -> None:
        self._credentials = credentials
        self._warn = warn
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._error: CommandError | None = None
        self._attempts = 0
        self._last_attempt = float("-inf")  # time.monotonic() when the last attempt ended
        self._reported: str | None = None
        self._thread = threading.Thread(target=self._run, name="stsvend-renewal", daemon=True)

    def start(self) -> BackgroundRenewal:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing. A renewal under way is not waited for: the thread is a daemon."""
        self._stopping.set()
        self._wake.set()

    def answer(self) -> Answer:
        credentials = self._credentials
        current = credentials.valid()
        if current is not None:
            if credentials.seconds_to_renewal() <= 0:
                self._wake.set()
            return current
        with self._changed:
            error = self._error
            recently = time.monotonic() - self._last_attempt < RETRY_WHEN_ASKED_SECONDS
            if error is None or not recently:
                seen = self._attempts
                self._wake.set()
                self._changed.wait_for(
                    lambda: self._attempts > seen or credentials.valid() is not None,
                    timeout=WAIT_FOR_RENEWAL_SECONDS,
                )
                error = self._error
        current = credentials.valid()
        if current is not None:
            return current
        if error is not None:
            raise error
        raise CommandError(
            "RenewalInProgress", "no valid credentials yet: a renewal is under way", EXIT_UNAVAILABLE
        )

    def _run(self) -> None:
        asked = False
        while not self._stopping.is_set():
            pause = self._pause(asked)
            if pause > 0:
                asked = self._wake.wait(pause) or asked  # a request's ask holds until an attempt
                self._wake.clear()
                continue
            asked = False
            self._attempt()

    def _pause(self, asked: bool) -> float:
        """Seconds until the next attempt: when the credentials are due, or with none valid, a
        while after the last attempt (shorter when a request is waiting for them)."""
        if self._credentials.valid() is not None:
            return self._credentials.seconds_to_renewal()
        interval = RETRY_WHEN_ASKED_SECONDS if asked else RETRY_AFTER_FAILURE_SECONDS
        return max(self._last_attempt + interval - time.monotonic(), 0.0)

    def _attempt(self) -> None:
        error: CommandError | None = None
        try:
            self._credentials.current()
        except CommandError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure, and say why
            error = CommandError("RenewalFailed", f"{type(exc).__name__} while renewing", EXIT_OTHER)
        with self._changed:
            self._last_attempt = time.monotonic()
            self._error = error
            self._attempts += 1
            self._changed.notify_all()
        if error is None or self._credentials.valid() is not None:
            self._reported = None
        elif self._reported != error.code:
            self._reported = error.code
            self._warn(
                f"cannot renew the credentials and none are valid ({error.code}: {error.message}); "
                "requests for them fail until a renewal succeeds"
            )
