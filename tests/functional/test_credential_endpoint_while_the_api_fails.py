"""`stsvend exec`'s endpoint answers from memory while the API hangs, and reports a failure once.

The credentials are renewed from a thread ahead of need: a request never waits for the API while
the current credentials are valid, so botocore's container fetch (2 s timeout) keeps succeeding
while a renewal hangs. A renewal the service refuses (a grant removed) ends the serving at once and
is reported in one warning, not one line per endpoint request.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.functional.fake_api import (
    ROLE,
    FakeApi,
    Received,
    Reply,
    assert_no_secret,
    base_env,
    run_cli,
    vended_answer,
)

HANG_SECONDS = 20.0
# 900 s credentials renewed within 898 s of expiry: due two seconds after each vend.
RENEWING = ["--duration", "900", "--refresh-window", "898"]

# botocore's own container provider and fetcher (2 s timeout, 3 attempts), a fresh one each round.
BOTOCORE_FETCHES = """
import json, sys, time
from botocore.credentials import ContainerProvider
seen = []
for _ in range(int(sys.argv[1])):
    try:
        seen.append(ContainerProvider().load().get_frozen_credentials().access_key)
    except Exception as error:
        seen.append(type(error).__name__)
    time.sleep(float(sys.argv[2]))
print(json.dumps(seen))
"""

STATUSES = """
import json, os, sys, time, urllib.error, urllib.request
request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                 headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
seen = []
for _ in range(int(sys.argv[1])):
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            seen.append([answer.status, json.loads(answer.read())["AccessKeyId"]])
    except urllib.error.HTTPError as error:
        seen.append([error.code, json.loads(error.read())["Code"]])
    open(os.environ["FIRST_ANSWERED"], "a").close()
    time.sleep(float(sys.argv[2]))
print(json.dumps(seen))
"""


def first_then(
    later: Reply | None, hang: float = 0.0, after: Path | None = None
) -> Callable[[Received], Reply]:
    """A route: a 15-minute answer first, then `later` (after `hang` seconds, and once `after`
    exists) for every call."""
    counter = itertools.count(1)

    def reply(request: Received) -> Reply:
        if next(counter) == 1:
            expiration = datetime.now(timezone.utc) + timedelta(minutes=15)
            return 200, {}, {**vended_answer(), "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for _ in range(600 if after is not None else 0):
            if after is not None and after.exists():
                break
            time.sleep(0.1)
        time.sleep(hang)
        assert later is not None
        return later

    return reply


def test_a_botocore_container_fetch_succeeds_at_once_while_the_api_hangs(
    api: FakeApi, tmp_path: Path
) -> None:
    api.reply("POST", "/credentials", first_then((503, {}, {"Code": "ServiceUnavailable",
                                                             "Message": "late"}), HANG_SECONDS))
    done = run_cli("exec", "--api", api.url, "--role", ROLE, *RENEWING, "--",
                   sys.executable, "-c", BOTOCORE_FETCHES, "5", "1", env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["ASIAVENDEDBYFAKEAPI1"] * 5
    assert len(api.calls("POST", "/credentials")) == 2, "a renewal was under way, and hung"
    assert_no_secret(done.stdout, done.stderr)


def test_a_refused_renewal_ends_the_serving_and_is_reported_once(api: FakeApi, tmp_path: Path) -> None:
    answered = tmp_path / "first-answered"  # the grant is removed once the child has had an answer
    api.reply("POST", "/credentials", first_then((403, {}, {"Code": "RoleNotGranted",
                                                            "Message": "the grant was removed"}),
                                                 after=answered))
    done = run_cli("exec", "--api", api.url, "--role", ROLE, *RENEWING, "--",
                   sys.executable, "-c", STATUSES, "16", "0.5",
                   env={**base_env(tmp_path), "FIRST_ANSWERED": str(answered)})

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen[0] == [200, "ASIAVENDEDBYFAKEAPI1"]
    refused = seen.index([502, "RoleNotGranted"])
    assert all(status == [502, "RoleNotGranted"] for status in seen[refused:]), seen
    assert len(seen) - refused >= 8
    warnings = [line for line in done.stderr.splitlines() if line.startswith("stsvend: warning:")]
    assert len(warnings) == 1, done.stderr
    assert "RoleNotGranted" in warnings[0]
    # A request while nothing is valid retries the API, but at most every few seconds.
    assert 2 <= len(api.calls("POST", "/credentials")) <= 4
    assert_no_secret(done.stdout, done.stderr)
