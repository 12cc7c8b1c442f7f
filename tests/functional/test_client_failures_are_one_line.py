"""A failure of the client is one line on stderr (then where to see why), never a traceback and never
the secret it met: malformed ambient credentials, an unexpected exception, an error body nested
deeper than a JSON reader goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stsvend import cli
from stsvend.client import commands
from tests.functional.fake_api import (
    AMBIENT_SECRET,
    ROLE,
    FakeApi,
    base_env,
    run_cli,
)

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
    api: FakeApi, tmp_path: Path, variables: dict[str, str],
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

    monkeypatch.setattr(commands, "cmd_whoami", explode)
    assert cli.main(["whoami", "--api", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err == "stsvend: InternalError: unexpected ValueError (please report it)\n"


def test_a_deeply_nested_error_body_is_one_line(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    api.reply("GET", "/roles", (400, {}, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000))
    assert cli.main(["roles", "--api", api.url]) == 2
    assert capsys.readouterr().err == "stsvend: HTTP400: HTTP 400\n"


CALLER_TOKEN = "IQoJb3JpZ2luX2VjTHECALLERSSESSIONTOKEN0001"


def test_api_gateways_quote_of_the_signed_request_never_shows_the_session_token(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """API Gateway answers a bad signature with the canonical request it computed, the caller's
    `x-amz-security-token` header among its lines: the client shows the reason, not the quote."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", CALLER_TOKEN)
    message = (
        "The request signature we calculated does not match the signature you provided. Check your AWS"
        " Secret Access Key and signing method. Consult the service documentation for details.\n\n"
        "The Canonical String for this request should have been\n'POST\n/api/credentials\n\n"
        f"host:{api.url[7:]}\nx-amz-date:20261207T040000Z\nx-amz-security-token:{CALLER_TOKEN}\n\n"
        "host;x-amz-date;x-amz-security-token\n0123abcd'\n\nThe String-to-Sign should have been\n"
        "'AWS4-HMAC-SHA256\n20261207T040000Z\n20261207/us-east-1/execute-api/aws4_request\nabcd'"
        f" {CALLER_TOKEN}"
    )
    api.reply("POST", "/credentials", (403, {}, json.dumps({"message": message}).encode()))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE, "--no-cache"]) == 3
    err = capsys.readouterr().err
    assert CALLER_TOKEN not in err and CALLER_TOKEN[:16] not in err
    assert "signature we calculated does not match" in err
    assert "the request AWS quoted is left out" in err
