"""stsvend.aws, the one place the checkout, operator and local-stack commands meet AWS: one retry
configuration (the SDKs' standard mode unless the user chose one), emulator clients that never take
the ambient credentials, and one translation of AWS's errors into what the user sees."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from stsvend import aws
from stsvend.checkout import commands
from stsvend.errors import EXIT_OTHER, CommandError
from stsvend.ops import common


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_RETRY_MODE",
                 "AWS_MAX_ATTEMPTS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    config.write_text(
        "[default]\nregion = eu-west-1\n[profile legacy]\nregion = eu-west-1\nretry_mode = legacy\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return config


def _retries(client: Any) -> tuple[str, int]:
    retries = client.meta.config.retries
    return retries["mode"], retries["total_max_attempts"] if "total_max_attempts" in retries else -1


def _ambient(service: str = "sts") -> Any:
    return aws.session().create_client(service, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")


def test_clients_retry_in_the_standard_mode(environment: Path) -> None:
    assert _ambient().meta.config.retries["mode"] == "standard"
    emulator = aws.emulator_client("sts", "http://127.0.0.1:9", "AKIAEXAMPLE", "x", region="us-east-1")
    assert emulator.meta.config.retries["mode"] == "standard"
    assert emulator.meta.config.connect_timeout == aws.EMULATOR_CONNECT_TIMEOUT


def test_the_users_retry_settings_still_decide(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    assert _retries(_ambient()) == ("adaptive", 7)
    monkeypatch.delenv("AWS_RETRY_MODE")
    monkeypatch.setenv("AWS_PROFILE", "legacy")
    assert _retries(_ambient()) == ("legacy", 7)


def test_an_emulator_client_never_takes_the_ambient_credentials(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENTAMBIENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient")
    client = aws.emulator_client("sts", "http://127.0.0.1:9", "AKIAEMULATOR", "emulator", region="us-east-1")
    assert client._request_signer._credentials.access_key == "AKIAEMULATOR"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


def _refusal(code: str = "AccessDenied") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no\x1b[2J"}}, "GetRole")


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (_refusal(), "AwsRefused"),
        (EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com"), "AwsUnreachable"),
        (NoCredentialsError(), "AwsUnreachable"),
    ],
)
def test_every_wing_translates_aws_errors_alike(raised: Exception, code: str) -> None:
    """The checkout commands, the operator commands and the local stack's callers all see AWS's
    errors as the same code, exit status and message."""

    def command(_: argparse.Namespace) -> int:
        raise raised

    seen = []
    with pytest.raises(CommandError) as direct:
        with aws.errors():
            command(argparse.Namespace())
    seen.append(direct.value)
    with pytest.raises(CommandError) as through_ops:
        common.run(command, argparse.Namespace())
    seen.append(through_ops.value)
    assert {(e.code, e.exit_status, e.message) for e in seen} == {
        (code, EXIT_OTHER, direct.value.message)
    }
    if code == "AwsRefused":
        assert direct.value.message == "AWS refused GetRole: AccessDenied: no\x1b[2J"
        assert "\x1b" not in direct.value.line()  # printed through stsvend.terminal


def test_the_checkout_commands_use_the_one_translation(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stsvend bootstrap` with AWS refusing: AwsRefused, exit 1, as the operator commands."""

    class Refusing:
        def create_client(self, service: str) -> Any:
            raise _refusal("ExpiredToken")

    monkeypatch.setattr(aws, "session", Refusing)
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(CommandError) as raised:
        commands.cmd_bootstrap(argparse.Namespace(root=str(root), table="t", stage="dev"))
    assert (raised.value.code, raised.value.exit_status) == ("AwsRefused", EXIT_OTHER)
    assert "ExpiredToken" in raised.value.message


def test_unless_refused_returns_none_only_for_the_named_codes() -> None:
    def refuse(code: str) -> Any:
        raise _refusal(code)

    assert aws.unless_refused(lambda: {"ok": 1}, "NoSuchEntity") == {"ok": 1}
    assert aws.unless_refused(lambda: refuse("NoSuchEntity"), "NoSuchEntity") is None
    with pytest.raises(ClientError):
        aws.unless_refused(lambda: refuse("AccessDenied"), "NoSuchEntity")
    with pytest.raises(EndpointConnectionError):
        aws.unless_refused(lambda: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url="x")), "X")


def test_error_code_reads_only_aws_refusals() -> None:
    assert aws.error_code(_refusal("Throttling")) == "Throttling"
    assert aws.error_code(ValueError("x")) is None
    assert aws.error_code(NoCredentialsError()) is None


def test_the_local_stack_reports_an_emulator_refusal_as_aws_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stsvend local up` when the emulator refuses a seeding call: the same AwsRefused line and exit
    status as the other commands, not a traceback."""
    from stsvend import local
    from stsvend.local import up

    def refusing(root: Path) -> int:
        raise _refusal("EntityAlreadyExists")

    monkeypatch.setattr(up, "up", refusing)
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(CommandError) as raised:
        local.cmd_local(argparse.Namespace(action="up", root=str(root)))
    assert (raised.value.code, raised.value.exit_status) == ("AwsRefused", EXIT_OTHER)
    assert "EntityAlreadyExists" in raised.value.message


def test_an_aws_refusal_never_carries_what_aws_quoted_of_the_request() -> None:
    """Some AWS front ends answer a bad signature with the canonical request, the caller's session
    token among its headers: the refusal keeps AWS's reason and drops the quote and the token."""
    token = "IQoJb3JpZ2luX2VjQUOTEDTOKEN000000000001"
    message = (
        "The request signature we calculated does not match the signature you provided.\n\n"
        f"The Canonical String for this request should have been\n'GET\n/\n\nx-amz-security-token:{token}\n'"
    )
    refused = ClientError({"Error": {"Code": "InvalidSignatureException", "Message": message}}, "ListRoles")
    with pytest.raises(CommandError) as raised, aws.errors():
        raise refused
    assert token not in raised.value.message and token[:12] not in raised.value.line()
    assert "signature we calculated does not match" in raised.value.message
    # A token quoted outside a canonical request, as a field, is masked too.
    quoted = ClientError({"Error": {"Code": "X", "Message": f"bad X-Amz-Security-Token={token}&a=b"}}, "Op")
    with pytest.raises(CommandError) as raised, aws.errors():
        raise quoted
    assert token not in raised.value.message and "X-Amz-Security-Token=<redacted>&a=b" in raised.value.message
