"""The region of the admin and operator commands (stsvend.aws), resolved as the AWS SDKs and AWS CLI v2 do:
AWS_REGION, then AWS_DEFAULT_REGION, then the profile's region; an SSO profile's sso_region is where
its portal is, never a default for API calls."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from stsvend import aws
from stsvend.errors import CommandError


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config"
    path.write_text(
        "[default]\nregion = ap-southeast-2\n"
        "[profile nothing]\noutput = json\n"
        "[profile sso]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Admin\n"
        "region = eu-central-1\n"
        "[profile sso-no-region]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Admin\n"
        "[sso-session corp]\nsso_region = us-east-1\nsso_start_url = https://corp.awsapps.com/start\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return path


def test_aws_region_comes_first(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws.resolve() == "eu-west-3"


def test_aws_default_region_before_the_profile(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws.resolve() == "us-west-2"


def test_the_selected_profiles_region(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert aws.resolve() == "ap-southeast-2"
    monkeypatch.setenv("AWS_PROFILE", "sso")
    assert aws.resolve() == "eu-central-1"


def test_an_sso_region_is_not_a_default_region(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "sso-no-region")
    assert aws.resolve() is None
    with pytest.raises(CommandError) as raised:
        aws.required()
    assert raised.value.code == "NoRegion" and "AWS_REGION" in raised.value.message


def test_a_profile_without_a_region_is_none(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nothing")
    assert aws.resolve() is None


def test_a_missing_profile_is_a_clear_error(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(CommandError) as raised:
        aws.resolve()
    assert raised.value.code == "NoSuchProfile"


@pytest.mark.parametrize("value", ["eu-west-1 ", "EU-WEST-1", "eu_west_1", "x", "eu-west-1\n", "ｅu-west-1",
                                   "eu-west-1/../x", "../../etc"])
def test_a_value_that_is_no_region_is_refused(
    config: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AWS_REGION", value)
    with pytest.raises(CommandError) as raised:
        aws.resolve()
    assert raised.value.code == "InvalidRegion" and "\n" not in raised.value.message


@pytest.mark.parametrize("value", ["us-east-1", "us-gov-west-1", "cn-northwest-1", "eu-central-2",
                                   "ap-southeast-5", "il-central-1", "mx-central-1"])
def test_every_kind_of_region_name(config: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AWS_REGION", value)
    assert aws.resolve() == value


def test_the_session_gives_its_clients_the_region(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert botocore.session.get_session().get_config_variable("region") == "ap-southeast-2"  # botocore alone
    client = aws.session().create_client("dynamodb", aws_access_key_id="a", aws_secret_access_key="b")
    assert client.meta.region_name == "eu-west-3"


def test_a_child_gets_both_variables() -> None:
    env = aws.child_environment("eu-west-3", {"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/bin"})
    assert env == {"AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-west-3", "PATH": "/bin"}
