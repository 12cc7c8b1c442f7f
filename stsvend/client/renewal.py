"""Credentials that are vended again before they expire: what the credentials server of `stsvend
exec` / `stsvend serve` answers with, and what the library's sessions refresh from.

Each renewal is a new signed POST /credentials with the same request (role, duration, tags, session
name), made with the ambient credentials as they are *then* (an instance role's keys rotate too).
The refresh window is the caller's, else automatic: 16 minutes, which is more than botocore's
advisory window (15 minutes) so a botocore client's own refresh finds the new credentials, but
never more than half the credentials' life, so 900 s credentials are used for 7.5 minutes each.
A renewal that fails because the service is unavailable or unreachable, while the current
credentials are still valid, is reported through `warn` and the current ones are served; it is
tried again after RETRY_AFTER_FAILURE_SECONDS, not on every request. Any other failure (a denial, a
bad answer) is not covered up: the current credentials are dropped and the failure is raised, as
the credential cache does (stsvend.client.api.obtain_credentials).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from stsvend.client.api import vend
from stsvend.client.cache import Answer, parse_expiration
from stsvend.errors import EXIT_UNAVAILABLE, EXIT_USAGE, CommandError

AUTOMATIC_WINDOW_SECONDS = 16 * 60
RETRY_AFTER_FAILURE_SECONDS = 30.0
MAX_DURATION_SECONDS = 3600  # role chaining's limit, so what the service's default duration can be

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
    """The current answer for one credential request; thread-safe."""

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
        self._lock = threading.Lock()
        self._answer: Answer | None = None
        self._expires_at = 0.0
        self._lifetime = 0.0
        self._next_attempt = 0.0

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
        with self._lock:
            now = self._clock()
            if self._answer is not None and not self._due(now):
                return self._answer
            if self._answer is not None and now < self._next_attempt and now < self._expires_at:
                return self._answer
            try:
                self._store(self._vend(), now)
            except CommandError as exc:
                if exc.exit_status != EXIT_UNAVAILABLE:
                    self._answer, self._expires_at = None, 0.0  # never handed out again
                    raise
                if self._answer is None or now >= self._expires_at:
                    raise
                self._next_attempt = now + RETRY_AFTER_FAILURE_SECONDS
                self._warn(
                    f"could not renew the credentials ({exc.code}: {exc.message}); serving the "
                    f"current ones, valid for {int(self._expires_at - now)} s more"
                )
            assert self._answer is not None
            return self._answer

    def _due(self, now: float) -> bool:
        window = self._window
        if window is None:
            window = min(AUTOMATIC_WINDOW_SECONDS, self._lifetime / 2)
        return self._expires_at - now <= window

    def _store(self, answer: Answer, now: float) -> None:
        expiration = parse_expiration(answer["Expiration"])
        assert expiration is not None  # vend() checks the answer
        self._answer = answer
        self._expires_at = expiration.timestamp()
        self._lifetime = max(self._expires_at - now, 0.0)
        self._next_attempt = 0.0
