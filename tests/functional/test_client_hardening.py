"""The client against hostile or broken surroundings (issue 10, items 12-15) and outages (issue 12
section 4), over real HTTP: the fake API of test_client, a real proxy listener on loopback, real
subprocesses where a traceback would show."""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stsvend import cli
from stsvend.client import api as client
from tests.functional.test_client import (
    AMBIENT_SECRET,
    ROLE,
    VENDED_SECRET,
    VENDED_TOKEN,
    FakeApi,
    _handler,
    api,  # noqa: F401 - the fixture
    assert_no_secret,
    base_env,
    env,  # noqa: F401 - the fixture
    run_cli,
    vended_answer,
)


def cached_entries(environment: dict[str, str]) -> list[Path]:
    return list((Path(environment["XDG_CACHE_HOME"]) / "stsvend").glob("*.json"))


# -- 12: never through a proxy to loopback ----------------------------------------------------


class ProxyListener:
    """An HTTP proxy on loopback that records every request it receives and forwards none."""

    def __init__(self) -> None:
        self.received: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                listener.received.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ProxyListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyListener]:
    with ProxyListener() as listener:
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, listener.url)
        yield listener


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_never_proxied_even_without_no_proxy(
    api: FakeApi, env: dict[str, str], proxy: ProxyListener, host: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = api.url.replace("127.0.0.1", host)
    assert cli.main(["credentials", "--api", url, "--role", ROLE, "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    assert proxy.received == []
    assert len(api.calls("POST", "/credentials")) == 1


def test_a_remote_https_api_still_goes_through_the_proxy(proxy: ProxyListener) -> None:
    # The control: the environment's proxy is honoured where it may be.
    assert client.proxy_for("https://abc.execute-api.eu-west-1.amazonaws.com/api") == proxy.url
    assert client.proxy_for("http://127.0.0.1:8000") is None
    assert client.proxy_for("http://[::1]:8000") is None


# -- 13: malformed ambient credentials ---------------------------------------------------------

SECRET_TEXT = "malformed-secret-text-never-shown"


@pytest.mark.parametrize(
    "variables",
    [
        {"AWS_SESSION_TOKEN": f"token\r\nX-Injected: {SECRET_TEXT}"},
        {"AWS_SESSION_TOKEN": f"token\n{SECRET_TEXT}"},
        {"AWS_SESSION_TOKEN": f"token {SECRET_TEXT}"},
        {"AWS_ACCESS_KEY_ID": "AKIA\r\nBADKEYID0001"},
        {"AWS_ACCESS_KEY_ID": "ＡＫＩＡFULLWIDTH00001"},
        {"AWS_ACCESS_KEY_ID": "AKIA/BAD=KEY"},
        {"AWS_SECRET_ACCESS_KEY": f"{SECRET_TEXT}\x1b[2J"},
        {"AWS_SECRET_ACCESS_KEY": f"sécret-{SECRET_TEXT}"},
    ],
    ids=["token-crlf", "token-lf", "token-space", "key-crlf", "key-fullwidth", "key-slash",
         "secret-escape", "secret-non-ascii"],
)
def test_malformed_ambient_credentials_are_one_line_without_the_secret(
    api: FakeApi, tmp_path: Path, variables: dict[str, str],  # noqa: F811
) -> None:
    environment = {**base_env(tmp_path), **variables}
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert done.stderr.startswith("stsvend: NoCredentials: the ambient AWS credentials are malformed: ")
    # One error line, then where to see why (the issue-20 contract; no profile selected here).
    assert done.stderr.splitlines()[1:] == ["stsvend: see why: stsvend doctor"]
    assert "Traceback" not in done.stderr
    for value in (SECRET_TEXT, AMBIENT_SECRET, *variables.values()):
        assert value not in done.stderr
    assert done.stdout == ""
    assert api.received == []


def test_an_unexpected_failure_is_one_line_without_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(args: Any) -> int:
        raise ValueError(f"header value {SECRET_TEXT}")

    monkeypatch.setattr(client, "cmd_whoami", explode)
    assert cli.main(["whoami", "--api", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err == "stsvend: InternalError: unexpected ValueError (please report it)\n"


# -- 14: the API's answer is checked before it is cached or printed ---------------------------


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
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str],  # noqa: F811
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


def test_a_deeply_nested_error_body_is_one_line(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    api.reply("GET", "/roles", (400, {}, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000))
    assert cli.main(["roles", "--api", api.url]) == 2
    assert capsys.readouterr().err == "stsvend: HTTP400: HTTP 400\n"


# -- 15 and section 4: the cache -----------------------------------------------------------------


def test_an_entry_moved_under_another_key_is_not_served(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    other = "arn:aws:iam::222222222222:role/other"
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 0
    [deployer_entry] = cached_entries(env)
    api.reply("POST", "/credentials", (200, {}, _answer(AccessKeyId="ASIAOTHERROLEKEY0001")))
    assert cli.main(["credentials", "--api", api.url, "--role", other]) == 0
    [other_entry] = [p for p in cached_entries(env) if p != deployer_entry]
    capsys.readouterr()
    # Swap: the deployer's key now names the other role's file.
    os.replace(other_entry, deployer_entry)
    api.reply("POST", "/credentials", (200, {}, vended_answer()))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    assert len(api.calls("POST", "/credentials")) == 3


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_cache_directory_others_can_write_is_not_read(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str], mode: int  # noqa: F811
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    directory = Path(env["XDG_CACHE_HOME"]) / "stsvend"
    os.chmod(directory, mode)
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert len(api.calls("POST", "/credentials")) == 2  # not a hit: asked the API again
    assert (directory.stat().st_mode & 0o777) == 0o700  # and the directory is tightened


def test_cache_clear_forgets_every_answer(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 1
    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.endswith(
        f"removed 1 cached answer(s) from {Path(env['XDG_CACHE_HOME']) / 'stsvend'}\n"
    )
    assert cached_entries(env) == []
    assert cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 2


def test_new_keys_in_the_credentials_file_are_a_new_cache_entry(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A profile-based caller after `make run` restarted: same profile name, new keys in the file.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    credentials.write_text("[default]\naws_access_key_id = AKIAFIRSTSTACK000001\n"
                           "aws_secret_access_key = first-stack-secret\n")
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 1
    credentials.write_text("[default]\naws_access_key_id = AKIASECONDSTACK00001\n"
                           "aws_secret_access_key = second-stack-secret\n")
    assert cli.main(argv) == 0
    capsys.readouterr()
    calls = api.calls("POST", "/credentials")
    assert len(calls) == 2
    assert "Credential=AKIASECONDSTACK00001/" in calls[1].headers["Authorization"]


@pytest.mark.parametrize(
    "outage",
    [(503, {"Retry-After": "0"}, {"Code": "ServiceUnavailable", "Message": "down"}),
     (504, {}, {"message": "Endpoint request timed out"})],
    ids=["503", "504"],
)
def test_an_outage_serves_still_valid_cached_credentials_with_a_warning(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str],  # noqa: F811
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
    env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    fake = FakeApi()
    fake.reply("POST", "/credentials", (200, {}, vended_answer()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    argv = ["credentials", "--api", fake.url, "--role", ROLE]
    try:
        assert cli.main(argv) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    first = capsys.readouterr().out
    # Nothing listens there any more: connection refused, retried once, then the cache.
    assert cli.main([*argv, "--refresh-window", "3600"]) == 0
    out, err = capsys.readouterr()
    assert out == first
    assert err.startswith("stsvend: warning: ServiceUnreachable: ")
    assert err.count("\n") == 1 and "using the cached credentials" in err


def test_an_outage_with_nothing_valid_cached_fails(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    down = {"Code": "ServiceUnavailable", "Message": "down"}
    api.reply("POST", "/credentials", (503, {"Retry-After": "0"}, down))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 4
    assert capsys.readouterr().err == ("stsvend: ServiceUnavailable: down\n"
                                       "stsvend: see why: stsvend doctor\n")


def test_a_denial_is_not_an_outage_and_is_not_papered_over(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    api.reply("POST", "/credentials", (403, {}, {"Code": "CallerNotAllowed", "Message": "revoked"}))
    assert cli.main([*argv, "--refresh-window", "3600"]) == 3
    out, err = capsys.readouterr()
    assert err == "stsvend: CallerNotAllowed: revoked\nstsvend: see why: stsvend doctor\n"


# -- section 2: where stsvend's own credentials come from ------------------------------------


def _stsvend_line(api_url: str, *extra: str) -> str:
    return shlex.join([sys.executable, "-m", "stsvend.cli", "credentials", "--api", api_url,
                       "--role", ROLE, *extra])


def test_the_selected_profile_running_stsvend_is_skipped_for_the_environment_keys(
    api: FakeApi, tmp_path: Path  # noqa: F811
) -> None:
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy]\ncredential_process = {_stsvend_line(api.url)}\n")
    environment["AWS_PROFILE"] = "deploy"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    [call] = api.calls("POST", "/credentials")
    assert "Credential=AKIAAMBIENTCALLER001/" in call.headers["Authorization"]


def test_the_selected_profile_running_stsvend_with_nothing_else_says_what_to_do(
    api: FakeApi, tmp_path: Path  # noqa: F811
) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy]\ncredential_process = {_stsvend_line(api.url)}\n")
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[base]\naws_access_key_id = AKIABASEPROFILE00001\naws_secret_access_key = base-secret\n")
    environment["AWS_PROFILE"] = "deploy"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert done.stderr.startswith("stsvend: NoCredentials: no AWS credentials found outside "
                                  "profile 'deploy', whose credential_process runs stsvend")
    assert "--source-profile NAME" in done.stderr
    assert api.received == []

    done = run_cli("credentials", "--api", api.url, "--role", ROLE, "--source-profile", "base",
                   env=environment)
    assert done.returncode == 0, done.stderr
    [call] = api.calls("POST", "/credentials")
    assert "Credential=AKIABASEPROFILE00001/" in call.headers["Authorization"]


def test_a_base_profile_selected_by_aws_profile_is_still_used(
    api: FakeApi, tmp_path: Path  # noqa: F811
) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[base]\naws_access_key_id = AKIABASEPROFILE00001\naws_secret_access_key = base-secret\n")
    environment["AWS_PROFILE"] = "base"
    done = run_cli("whoami", "--api", api.url, env={**environment})
    assert done.returncode == 1  # the fake API has no /whoami: it was reached, signed as base
    [call] = api.calls("GET", "/whoami")
    assert "Credential=AKIABASEPROFILE00001/" in call.headers["Authorization"]


@pytest.mark.parametrize(
    ("config", "says"),
    [("[profile loop]\ncredential_process = {line}\n", "runs stsvend itself"),
     ("[profile other]\nregion = us-east-1\n", "no such profile")],
    ids=["runs-stsvend", "missing"],
)
def test_a_source_profile_that_cannot_be_the_source_is_refused(
    api: FakeApi, tmp_path: Path, config: str, says: str  # noqa: F811
) -> None:
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(config.format(line=_stsvend_line(api.url)))
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, "--source-profile", "loop",
                   env=environment)
    assert done.returncode == 3
    assert done.stderr.startswith("stsvend: NoCredentials: --source-profile 'loop'")
    error, hint = done.stderr.splitlines()
    assert says in error and hint == "stsvend: see why: stsvend doctor"
    assert api.received == []
