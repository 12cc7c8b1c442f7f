"""The API's answer is checked before it is cached or printed: credentials that expire too far ahead
or already, keys and tokens that are not printable ASCII or not of their shape, an answer that is
not a JSON object or is too large are an error in every output format, with no secret in it, and
nothing is cached."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from stsvend import cli
from tests.functional.fake_api import (
    ROLE,
    VENDED_SECRET,
    VENDED_TOKEN,
    FakeApi,
    assert_no_secret,
    cached_entries,
    vended_answer,
)


def _answer(**changes: Any) -> dict[str, Any]:
    return {**vended_answer(), **changes}


def _in(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_answer(Expiration="2099-01-01T00:00:00Z"), "more than 12 hours away"),
        (_answer(Expiration=_in(13 * 3600)), "more than 12 hours away"),
        (_answer(Expiration=_in(-60)), "already expired"),
        (_answer(SecretAccessKey=VENDED_SECRET + "\x00tail"), "SecretAccessKey is not printable ASCII"),
        (_answer(SessionToken=VENDED_TOKEN + "\r\nX: y"), "SessionToken is not printable ASCII"),
        (_answer(SessionToken=VENDED_TOKEN + " x"), "SessionToken is not printable ASCII"),
        (_answer(SessionToken=VENDED_TOKEN + "é"), "SessionToken is not printable ASCII"),
        (_answer(SessionToken=VENDED_TOKEN + "x" * 20000), "SessionToken is not printable ASCII"),
        (_answer(AccessKeyId="asiavendedbyfakeapi1"), "AccessKeyId is not 16-128"),
        (_answer(AccessKeyId="ASIA\nVENDED000001"), "AccessKeyId is not 16-128"),
        (_answer(AccessKeyId="ASIA1"), "AccessKeyId is not 16-128"),
        (_answer(AccessKeyId=12345678901234567), "lacks AccessKeyId"),
        (b"[" * 100_000 + b"]" * 100_000, "without a JSON object"),
        (b'{"AccessKeyId": "' + b"A" * (2 << 20) + b'"}', "too large"),
    ],
    ids=["year-2099", "13-hours", "expired", "nul-in-secret", "crlf-in-token", "space-in-token",
         "non-ascii-token", "huge-token", "lower-case-key", "newline-in-key", "short-key",
         "numeric-key", "deeply-nested", "huge-answer"],
)
def test_an_untrustworthy_answer_is_an_error_and_never_cached(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    body: Any, says: str,
) -> None:
    api.reply("POST", "/credentials", (200, {}, body))
    for output_format in ("process", "env", "json"):
        rc = cli.main(["credentials", "--api", api.url, "--role", ROLE, "--format", output_format])
        out, err = capsys.readouterr()
        assert rc == 1 and out == ""
        assert err.startswith("stsvend: InvalidAnswer: ") and says in err
        assert len(err.splitlines()) == 2 and err.endswith("\nstsvend: see why: stsvend doctor\n")
        assert_no_secret(err)
    assert cached_entries(env) == []
