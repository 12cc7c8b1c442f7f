"""A failure of the client is one line on stderr (then where to see why), never a traceback and never
the secret it met: malformed ambient credentials, an unexpected exception, an error body nested
deeper than a JSON reader goes."""

from __future__ import annotations

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
