"""The client's settings (stsvend.client.location), requests (request), answers (answers,
transport) and renderings (commands, exec), without a server: the logic of `stsvend credentials`
and `stsvend exec`."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

import pytest

from stsvend.client import answers, commands, location, request, transport
from stsvend.client.exec import environment_with_keys
from stsvend.errors import EXIT_USAGE, CommandError
from tests.unit.answers import answer


@pytest.mark.parametrize(
    ("option", "url", "env", "expected"),
    [
        ("eu-west-1", "https://abc.execute-api.us-east-2.amazonaws.com/api", {}, "eu-west-1"),
        (None, "https://abc123.execute-api.us-east-2.amazonaws.com/api", {"AWS_REGION": "x"},
         "us-east-2"),
        (None, "https://a.execute-api.cn-north-1.amazonaws.com.cn/api", {}, "cn-north-1"),
        (None, "https://stsvend.example.com", {"AWS_REGION": "ap-south-1"}, "ap-south-1"),
        (None, "https://stsvend.example.com", {"AWS_DEFAULT_REGION": "sa-east-1"}, "sa-east-1"),
        (None, "http://127.0.0.1:8000", {}, "us-east-1"),
    ],
)
def test_region(option: str | None, url: str, env: dict[str, str], expected: str) -> None:
    assert location.resolve_region(option, url, env) == expected


def test_api_url_from_option_or_environment() -> None:
    assert location.api_url("https://x.example.com/api/", {}) == "https://x.example.com/api"
    assert location.api_url(None, {"STSVEND_API_URL": "http://127.0.0.1:8000"}) == (
        "http://127.0.0.1:8000"
    )


def test_plain_http_only_on_this_machine() -> None:
    for url in ("http://127.0.0.1:8000", "http://localhost:8000/api", "http://[::1]:8000"):
        assert location.api_url(url, {}) == url


@pytest.mark.parametrize(
    "raw", [None, "", "ftp://x.example.com", "x.example.com", "https://", "https://h:99999",
            "https://h/api?x=1", "http://stsvend.corp/api", "http://10.0.0.5:8000",
            "https://user:pw@h/api"]
)
def test_api_url_missing_or_malformed_is_a_usage_error(raw: str | None) -> None:
    with pytest.raises(CommandError) as caught:
        location.api_url(raw, {})
    assert caught.value.exit_status == EXIT_USAGE


def test_request_body_carries_only_what_was_asked() -> None:
    args = argparse.Namespace(role="arn:aws:iam::2:role/r", duration=None, tag=[], session_name=None)
    assert request.credential_request(args) == {"role_arn": "arn:aws:iam::2:role/r"}
    args = argparse.Namespace(role="r", duration=900, tag=["build-id=12", "job=a=b"],
                              session_name="deploy-12")
    assert request.credential_request(args) == {
        "role_arn": "r", "duration_seconds": 900, "tags": {"build-id": "12", "job": "a=b"},
        "session_name": "deploy-12",
    }


@pytest.mark.parametrize("tags", [["novalue"], ["=v"], ["k=1", "k=2"]])
def test_malformed_tags_are_usage_errors(tags: list[str]) -> None:
    with pytest.raises(CommandError) as caught:
        request.parse_tags(tags)
    assert caught.value.exit_status == EXIT_USAGE


def test_process_format_is_exactly_credential_process_version_1() -> None:
    vended = answer(Expiration="2026-11-28T20:00:00.000+00:00")
    assert json.loads(commands.render(vended, "process")) == {
        "Version": 1,
        "AccessKeyId": "ASIAUNITTESTKEY00001",
        "SecretAccessKey": "unit-secret",
        "SessionToken": "unit-token",
        "Expiration": "2026-11-28T20:00:00Z",
    }


def test_json_format_is_the_full_answer() -> None:
    assert json.loads(commands.render(answer(RequestId="r-1"), "json")) == answer(RequestId="r-1")


def test_env_format_is_shell_quoted_exports() -> None:
    vended = answer(SecretAccessKey="a'b $c `d`", SessionToken="tok/en+=")
    lines = commands.render(vended, "env").splitlines()
    assert all(line.startswith("export ") for line in lines)
    parsed = dict(shlex.split(line[len("export "):])[0].split("=", 1) for line in lines)
    assert parsed == {
        "AWS_ACCESS_KEY_ID": "ASIAUNITTESTKEY00001",
        "AWS_SECRET_ACCESS_KEY": "a'b $c `d`",
        "AWS_SESSION_TOKEN": "tok/en+=",
        "AWS_CREDENTIAL_EXPIRATION": answer()["Expiration"],
        "AWS_SESSION_EXPIRATION": answer()["Expiration"],
    }


def test_exec_environment_replaces_credentials_and_drops_profiles() -> None:
    parent = {"PATH": "/bin", "AWS_PROFILE": "base", "AWS_DEFAULT_PROFILE": "base",
              "AWS_ACCESS_KEY_ID": "AKIAPARENT", "AWS_SECRET_ACCESS_KEY": "parent",
              "AWS_SECURITY_TOKEN": "legacy", "AWS_REGION": "eu-west-1"}
    child = environment_with_keys(parent, answer(), "arn:aws:iam::111111111111:role/r")
    assert child == {
        "PATH": "/bin",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "ASIAUNITTESTKEY00001",
        "AWS_SECRET_ACCESS_KEY": "unit-secret",
        "AWS_SESSION_TOKEN": "unit-token",
        "AWS_CREDENTIAL_EXPIRATION": answer()["Expiration"],
        "AWS_SESSION_EXPIRATION": answer()["Expiration"],
        "STSVEND_EXEC": "arn:aws:iam::111111111111:role/r",
    }


@pytest.mark.parametrize(
    ("status", "body", "code", "exit_status"),
    [
        (400, {"Code": "InvalidRequest", "Message": "m"}, "InvalidRequest", 2),
        (413, {"Code": "PayloadTooLarge", "Message": "m"}, "PayloadTooLarge", 2),
        (401, {"Code": "NotAuthenticated", "Message": "m"}, "NotAuthenticated", 3),
        (403, {"Code": "RoleNotGranted", "Message": "m"}, "RoleNotGranted", 3),
        (403, {"message": "Missing Authentication Token"}, "HTTP403", 3),
        (502, {"Code": "AssumeRoleDenied", "Message": "m"}, "AssumeRoleDenied", 3),
        (502, {"message": "Internal server error"}, "HTTP502", 4),
        (503, {"Code": "ServiceUnavailable", "Message": "m"}, "ServiceUnavailable", 4),
        (504, None, "HTTP504", 4),
        (500, {"Code": "InternalError", "Message": "m"}, "InternalError", 1),
    ],
)
def test_service_errors_map_to_exit_statuses(
    status: int, body: Any, code: str, exit_status: int
) -> None:
    raw = b"<html>gateway</html>" if body is None else json.dumps(body).encode()
    with pytest.raises(CommandError) as caught:
        answers.decode_answer(transport.HttpAnswer(status, {}, raw))
    assert (caught.value.code, caught.value.exit_status) == (code, exit_status)


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0", 0.0), ("9999", 10.0), ("-5", 0.0), ("soon", 1.0),
                            ("nan", 1.0)]
)
def test_retry_after_is_bounded(header: str, seconds: float) -> None:
    assert answers.retry_after({"Retry-After": header}) == seconds


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://abc.execute-api.us-east-1.amazonaws.com/api", "http://proxy.corp:3128"),
     ("http://stsvend.corp/api", "http://plain-proxy.corp:3128"),
     ("http://127.0.0.1:8000", None),
     ("https://api.internal.corp", None)],
)
def test_proxy_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str | None
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    monkeypatch.setenv("http_proxy", "http://plain-proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,.internal.corp")
    assert transport.proxy_for(url) == expected


@pytest.mark.parametrize("bad", ["\n[profile evil]\ncredential_process = touch pwned", "\r", "\t", "\x00"])
def test_api_url_with_a_control_character_is_refused(bad: str) -> None:
    """urlsplit drops CR, LF and TAB silently, so such a URL passed the check and went as is into
    the credential_process line `configure` writes: a newline there starts a new profile."""
    with pytest.raises(CommandError) as raised:
        location.api_url(f"http://127.0.0.1:8000/api{bad}/v1", {})
    assert (raised.value.code, raised.value.exit_status) == ("InvalidApiUrl", 2)
