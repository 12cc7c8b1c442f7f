"""Where stsvend's own credentials come from when the selected profile is one whose
credential_process runs stsvend: the rest of the chain (environment keys), `--source-profile`
naming the profile with this machine's own keys, and a clear refusal when there is none."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from tests.functional.fake_api import (
    ROLE,
    FakeApi,
    base_env,
    run_cli,
)


def _stsvend_line(api_url: str, *extra: str) -> str:
    return shlex.join([sys.executable, "-m", "stsvend.cli", "credentials", "--api", api_url,
                       "--role", ROLE, *extra])


def _select_a_profile_running_stsvend(environment: dict[str, str], api_url: str) -> None:
    """AWS_PROFILE selects `deploy`, whose credential_process is stsvend itself."""
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy]\ncredential_process = {_stsvend_line(api_url)}\n")
    environment["AWS_PROFILE"] = "deploy"


def signing_keys(api: FakeApi, method: str, path: str) -> list[str]:
    """The access key id each request to `path` was signed with."""
    return [call.headers["Authorization"].split("Credential=")[1].split("/")[0]
            for call in api.calls(method, path)]


def test_the_selected_profile_running_stsvend_is_skipped_for_the_environment_keys(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    _select_a_profile_running_stsvend(environment, api.url)
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    assert signing_keys(api, "POST", "/credentials") == ["AKIAAMBIENTCALLER001"]


def test_the_selected_profile_running_stsvend_with_nothing_else_says_what_to_do(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    _select_a_profile_running_stsvend(environment, api.url)
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[base]\naws_access_key_id = AKIABASEPROFILE00001\naws_secret_access_key = base-secret\n")
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert done.stderr.startswith("stsvend: NoCredentials: no AWS credentials found outside "
                                  "profile 'deploy', whose credential_process runs stsvend")
    assert "--source-profile NAME" in done.stderr
    assert api.received == []

    done = run_cli("credentials", "--api", api.url, "--role", ROLE, "--source-profile", "base",
                   env=environment)
    assert done.returncode == 0, done.stderr
    assert signing_keys(api, "POST", "/credentials") == ["AKIABASEPROFILE00001"]


def test_a_base_profile_selected_by_aws_profile_is_still_used(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[base]\naws_access_key_id = AKIABASEPROFILE00001\naws_secret_access_key = base-secret\n")
    environment["AWS_PROFILE"] = "base"
    done = run_cli("whoami", "--api", api.url, env={**environment})
    assert done.returncode == 1  # the fake API has no /whoami: it was reached, signed as base
    assert signing_keys(api, "GET", "/whoami") == ["AKIABASEPROFILE00001"]


@pytest.mark.parametrize(
    ("config", "says"),
    [("[profile loop]\ncredential_process = {line}\n", "runs stsvend itself"),
     ("[profile other]\nregion = us-east-1\n", "no such profile")],
    ids=["runs-stsvend", "missing"],
)
def test_a_source_profile_that_cannot_be_the_source_is_refused(
    api: FakeApi, tmp_path: Path, config: str, says: str
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
