"""An outage costs one timeout, not one per run (issue 20 section 5): a run that finds the API down
remembers it in the cache directory, briefly and for that API only; the runs after it serve the
still-valid cached credentials without asking the API again. A denial is never remembered as an
outage. (How long the runs take is measured in bench/clientcache.py; here the API's own count of
requests shows who waited for it.)"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from stsvend import cli
from stsvend.client import status, transport
from stsvend.client.cache import default_directory
from tests.functional.fake_api import (
    ROLE,
    FakeApi,
    Received,
    assert_no_secret,
    serving,
    vended_answer,
)

DUE = ["--refresh-window", "3600"]  # the cached credentials are due for refresh: a miss


def _hung(request: Received) -> tuple[int, dict[str, str], Any]:
    time.sleep(3)  # past the read timeout below: the API accepted the connection and hangs
    return 200, {}, vended_answer()


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "READ_TIMEOUT_SECONDS", 0.5)



def test_a_hung_api_is_waited_for_once_then_the_cache_is_served_at_once(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    api.reply("POST", "/credentials", _hung)

    for _ in range(4):
        assert cli.main([*argv, *DUE]) == 0
        out, err = capsys.readouterr()
        assert out == first
        assert "using the cached credentials" in err
        assert_no_secret(err)
    # One request timed out; the three runs after it knew the API was down.
    assert len(api.calls("POST", "/credentials")) == 2
    assert "not asked again" in err

    record = Path(status.outage_path(default_directory(os.environ), api.url))
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert api.url in json.loads(record.read_text())["api"]


def test_the_outage_is_remembered_briefly_and_for_that_api_only(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    api.reply("POST", "/credentials", _hung)
    assert cli.main([*argv, *DUE]) == 0
    assert len(api.calls("POST", "/credentials")) == 2

    # The same server under another URL of its own is another API: it is asked.
    other = api.url.replace("127.0.0.1", "localhost")
    assert cli.main(["credentials", "--api", other, "--role", ROLE, *DUE]) == 4
    assert len(api.calls("POST", "/credentials")) == 3

    # Once the memory has passed, the API is asked again; an answer forgets the outage.
    monkeypatch.setattr(status, "OUTAGE_MEMORY_SECONDS", 0.0)
    api.reply("POST", "/credentials", (200, {}, vended_answer()))
    assert cli.main([*argv, *DUE]) == 0
    assert len(api.calls("POST", "/credentials")) == 4
    assert not Path(status.outage_path(default_directory(os.environ), api.url)).exists()
    capsys.readouterr()


def test_with_nothing_valid_cached_a_known_outage_still_asks(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    api.reply("POST", "/credentials", _hung)
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 4
    assert cli.main(argv) == 4
    assert len(api.calls("POST", "/credentials")) == 2
    assert capsys.readouterr().err.count("stsvend: ServiceUnreachable: no answer from") == 2


def test_a_denial_is_never_remembered_as_an_outage(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    api.reply("POST", "/credentials", _hung)
    assert cli.main([*argv, *DUE]) == 0  # the outage is recorded
    denied = (403, {}, {"Code": "CallerNotAllowed", "Message": "revoked"})
    api.reply("POST", "/credentials", denied)
    Path(status.outage_path(default_directory(os.environ), api.url)).unlink()
    for expected_calls in (3, 4):
        assert cli.main([*argv, *DUE]) == 3  # each run asks, and is told no
        assert len(api.calls("POST", "/credentials")) == expected_calls
    assert not Path(status.outage_path(default_directory(os.environ), api.url)).exists()
    assert capsys.readouterr().err.endswith(
        "stsvend: CallerNotAllowed: revoked\nstsvend: see why: stsvend doctor\n")


def test_a_record_that_is_not_ours_is_ignored(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Another API's record copied under this one's name, or a file others could write, is not
    an outage: the API is asked."""
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    path = Path(status.outage_path(default_directory(os.environ), api.url))
    api.reply("POST", "/credentials", (200, {}, vended_answer()))
    for record, mode in (({"api": "http://127.0.0.1:1", "since": time.time()}, 0o600),
                         ({"api": api.url, "since": time.time()}, 0o644)):
        path.write_text(json.dumps(record))
        path.chmod(mode)
        calls = len(api.calls("POST", "/credentials"))
        assert cli.main([*argv, *DUE]) == 0
        assert len(api.calls("POST", "/credentials")) == calls + 1
    capsys.readouterr()


def test_cache_clear_forgets_the_outage_too(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    api.reply("POST", "/credentials", _hung)
    assert cli.main([*argv, *DUE]) == 0
    capsys.readouterr()
    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 cached answer(s)")
    assert not Path(status.outage_path(default_directory(os.environ), api.url)).exists()


def test_botocore_processes_during_an_outage_wait_for_the_api_once(
    api: FakeApi, tmp_path: Path
) -> None:
    """Real clients: three boto3 processes load a profile whose credential_process is stsvend
    (due for refresh) while the API hangs. The first waits for it; the other two get the cached
    credentials without a request to the API."""
    import shlex
    import subprocess
    import sys

    from tests.functional.fake_api import ROOT, base_env

    entry = ("import sys;import stsvend.client.transport as api;api.READ_TIMEOUT_SECONDS=1.0;"
             "from stsvend.cli import main;sys.exit(main())")
    line = shlex.join([sys.executable, "-I", "-c", entry, "credentials", "--api", api.url,
                       "--role", ROLE, "--refresh-window", "3600"])
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(f"[profile p]\ncredential_process = {line}\n")
    load = [sys.executable, "-c", "import boto3; print(boto3.Session(profile_name='p')"
            ".get_credentials().get_frozen_credentials().access_key)"]

    def run() -> str:
        done = subprocess.run(load, env=environment, cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run() == "ASIAVENDEDBYFAKEAPI1"
    assert len(api.calls("POST", "/credentials")) == 1
    api.reply("POST", "/credentials", _hung)
    for _ in range(3):
        assert run() == "ASIAVENDEDBYFAKEAPI1"
    assert len(api.calls("POST", "/credentials")) == 2


@pytest.mark.parametrize(
    "outage",
    [(503, {"Retry-After": "0"}, {"Code": "ServiceUnavailable", "Message": "down"}),
     (504, {}, {"message": "Endpoint request timed out"})],
    ids=["503", "504"],
)
def test_an_outage_serves_still_valid_cached_credentials_with_a_warning(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    outage: tuple[int, dict[str, str], dict[str, str]],
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    api.reply("POST", "/credentials", outage)
    # Due for refresh (the window is longer than the life left): the API is asked, and is down.
    assert cli.main([*argv, "--refresh-window", "3600"]) == 0
    out, err = capsys.readouterr()
    assert out == first
    assert err.startswith("stsvend: warning: ") and "using the cached credentials, which expire at" in err
    assert_no_secret(err)
    assert len(api.calls("POST", "/credentials")) >= 2


def test_an_unreachable_api_serves_still_valid_cached_credentials_with_a_warning(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeApi()
    fake.reply("POST", "/credentials", (200, {}, vended_answer()))
    with serving(fake):
        argv = ["credentials", "--api", fake.url, "--role", ROLE]
        assert cli.main(argv) == 0
    first = capsys.readouterr().out
    # Nothing listens there any more: connection refused, retried once, then the cache.
    assert cli.main([*argv, "--refresh-window", "3600"]) == 0
    out, err = capsys.readouterr()
    assert out == first
    assert err.startswith("stsvend: warning: ServiceUnreachable: ")
    assert err.count("\n") == 1 and "using the cached credentials" in err


def test_an_outage_with_nothing_valid_cached_fails(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    down = {"Code": "ServiceUnavailable", "Message": "down"}
    api.reply("POST", "/credentials", (503, {"Retry-After": "0"}, down))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 4
    assert capsys.readouterr().err == ("stsvend: ServiceUnavailable: down\n"
                                       "stsvend: see why: stsvend doctor\n")


def test_a_denial_is_not_an_outage_and_is_not_papered_over(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    api.reply("POST", "/credentials", (403, {}, {"Code": "CallerNotAllowed", "Message": "revoked"}))
    assert cli.main([*argv, "--refresh-window", "3600"]) == 3
    out, err = capsys.readouterr()
    assert err == "stsvend: CallerNotAllowed: revoked\nstsvend: see why: stsvend doctor\n"
