"""The client's OIDC path without a server: where the token comes from, that every renewal reads it
again, that one source is chosen, and what is sent (a bearer token, never a signature)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from stsvend.client import oidc
from stsvend.client.renewal import RenewingCredentials
from stsvend.client.transport import HttpAnswer
from stsvend.errors import CommandError
from tests.functional.fake_api import vended_answer

ROLE = "arn:aws:iam::111111111111:role/read-only"
API = "https://stsvend.example/api"


def _args(**given: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "api": API,
        "role": ROLE,
        "duration": None,
        "tag": [],
        "session_name": None,
        "oidc_token_file": None,
        "oidc_token_env": None,
        "github_actions": False,
        "oidc_audience": None,
    }
    values.update(given)
    return argparse.Namespace(**values)


def _jwt(n: int) -> str:
    return f"eyJhbGciOiJSUzI1NiJ9.eyJuIjo{n}fQ.c2lnbmF0dXJl"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> HttpAnswer:
        self.sent.append((method, url, headers, body))
        return HttpAnswer(200, {}, json.dumps(vended_answer()).encode())


def test_every_renewal_reads_the_token_file_again(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_jwt(1) + "\n")
    transport = Recorder()
    # A window longer than the answers' life: every current() is a renewal.
    renewing = RenewingCredentials(
        oidc.vend_again(_args(oidc_token_file=str(token_file)), {}, transport), 7200
    )

    renewing.current()
    token_file.write_text(_jwt(2))  # the CI system rotated it
    renewing.current()

    sent = [headers["Authorization"] for _, _, headers, _ in transport.sent]
    assert sent == [f"Bearer {_jwt(1)}", f"Bearer {_jwt(2)}"]
    method, url, headers, body = transport.sent[0]
    assert (method, url) == ("POST", API + "/oidc/credentials")
    assert json.loads(body or b"") == {"role_arn": ROLE}
    assert not any(h.lower().startswith(("x-amz", "x-stsvend")) for h in headers)


def test_the_token_env_variable_is_read_when_vending() -> None:
    transport = Recorder()
    vend = oidc.vend_again(_args(oidc_token_env="CI_TOKEN"), {"CI_TOKEN": _jwt(3)}, transport)
    vend()
    assert transport.sent[0][2]["Authorization"] == f"Bearer {_jwt(3)}"


@pytest.mark.parametrize(
    ("given", "env", "code"),
    [
        ({"oidc_token_env": "MISSING"}, {}, "NoToken"),
        ({"oidc_token_env": "EMPTY"}, {"EMPTY": " \n"}, "NoToken"),
        ({"oidc_token_env": "NOT_A_JWT"}, {"NOT_A_JWT": "AKIA-looking-secret"}, "InvalidToken"),
        ({"oidc_token_env": "HUGE"}, {"HUGE": "a." * 9000 + "b"}, "InvalidToken"),
        ({"oidc_token_env": "CTRL"}, {"CTRL": "a.b\x1b[2J.c"}, "InvalidToken"),
        ({"github_actions": True}, {}, "NoToken"),
        (
            {"github_actions": True},
            {
                "ACTIONS_ID_TOKEN_REQUEST_URL": "http://runner.example/token",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
            },
            "InvalidRequest",
        ),
    ],
)
def test_a_missing_or_malformed_token_is_refused_before_any_request(
    given: dict[str, Any], env: dict[str, str], code: str
) -> None:
    transport = Recorder()
    with pytest.raises(CommandError) as raised:
        oidc.vend_again(_args(**given), env, transport)()
    assert raised.value.code == code
    assert transport.sent == []
    assert "AKIA-looking-secret" not in raised.value.message


def test_a_token_file_that_is_not_text_or_missing_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe.a.b")
    for path, code in ((binary, "InvalidToken"), (tmp_path / "absent", "NoToken")):
        with pytest.raises(CommandError) as raised:
            oidc.vend_again(_args(oidc_token_file=str(path)), {}, Recorder())()
        assert raised.value.code == code


def test_only_one_token_source_may_be_given(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="use one of"):
        oidc.requested(_args(oidc_token_file=str(tmp_path / "t"), github_actions=True))
    assert oidc.requested(_args(oidc_token_env="T"))
    assert not oidc.requested(_args())


def test_github_actions_asks_with_the_audience_and_the_request_token() -> None:
    asked: list[tuple[str, dict[str, str]]] = []

    def transport(method: str, url: str, headers: dict[str, str], body: bytes | None) -> HttpAnswer:
        if "/oidc/credentials" in url:
            return HttpAnswer(200, {}, json.dumps(vended_answer()).encode())
        asked.append((url, headers))
        return HttpAnswer(200, {}, json.dumps({"value": _jwt(4)}).encode())

    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://pipelines.actions.example/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }
    oidc.vend_again(_args(github_actions=True, oidc_audience="sts vend/x"), env, transport)()
    ((url, headers),) = asked
    assert url == "https://pipelines.actions.example/token?api-version=2.0&audience=sts%20vend%2Fx"
    assert headers["Authorization"] == "bearer request-token"
