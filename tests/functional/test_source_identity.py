"""Where `stsvend credentials` finds its own identity when it was run *for* a profile (issue 20,
sections 1 and 2): recursion is recognised by a marker stsvend sets for the processes it starts,
never by a word in a command line or a path; without `--source-profile`, the identity is where the
SDK would have found it had AWS_PROFILE not named the stsvend profile, `[default]` included."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from pathlib import Path

import pytest

from tests.functional.fake_api import (
    ROLE,
    FakeApi,
    base_env,
    run_cli,
)

DEFAULT_KEY = "AKIADEFAULTPROFILE01"
HELPER_KEY = "AKIAHELPERSCRIPT0001"


def _stsvend_line(api_url: str, *extra: str) -> str:
    return shlex.join([sys.executable, "-m", "stsvend.cli", "credentials", "--api", api_url,
                       "--role", ROLE, *extra])


def _helper(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "creds.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _signed_as(api: FakeApi) -> str:
    [call] = api.calls("POST", "/credentials")
    return call.headers["Authorization"].split("Credential=")[1].split("/")[0]


def _without_env_keys(tmp_path: Path) -> dict[str, str]:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    return environment


def test_a_helper_whose_path_names_stsvend_is_a_source_like_any_other(
    api: FakeApi, tmp_path: Path
) -> None:
    """A credential_process helper under /usr/local/lib/stsvend-tools/ (or a clone named stsvend)
    is not stsvend: it is the selected profile's source, as the SDK would use it."""
    keys = json.dumps({"Version": 1, "AccessKeyId": HELPER_KEY, "SecretAccessKey": "helper-secret"})
    script = _helper(tmp_path / "stsvend-tools" / "stsvend", f"echo '{keys}'")
    environment = _without_env_keys(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile agent]\ncredential_process = {script} --for stsvend\n")
    environment["AWS_PROFILE"] = "agent"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    assert _signed_as(api) == HELPER_KEY


def test_a_wrapper_that_runs_stsvend_is_recognised_by_what_it_runs(
    api: FakeApi, tmp_path: Path
) -> None:
    """A profile whose helper (named nothing like stsvend) runs stsvend is passed over for
    `[default]`, as a line naming stsvend directly is."""
    script = _helper(tmp_path / "tools", f"exec {_stsvend_line(api.url)}")
    environment = _without_env_keys(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy-dev]\ncredential_process = {script}\n")
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[default]\naws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = default-secret\n")
    environment["AWS_PROFILE"] = "deploy-dev"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    assert _signed_as(api) == DEFAULT_KEY


@pytest.mark.parametrize("selected_by", ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
@pytest.mark.parametrize("keys_in", ["credentials", "config"])
def test_aws_profile_naming_the_stsvend_profile_signs_with_the_default_profile(
    api: FakeApi, tmp_path: Path, selected_by: str, keys_in: str
) -> None:
    """The Jenkins agent with keys in `[default]` runs `AWS_PROFILE=deploy-dev terraform apply`."""
    environment = _without_env_keys(tmp_path)
    keys = f"aws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = default-secret\n"
    config = f"[profile deploy-dev]\ncredential_process = {_stsvend_line(api.url)}\n"
    if keys_in == "config":
        config += f"[default]\n{keys}"
    else:
        Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(f"[default]\n{keys}")
    Path(environment["AWS_CONFIG_FILE"]).write_text(config)
    environment[selected_by] = "deploy-dev"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    assert _signed_as(api) == DEFAULT_KEY


def test_a_default_profile_that_runs_stsvend_is_passed_over_too(
    api: FakeApi, tmp_path: Path
) -> None:
    """Both the selected profile and `[default]` run stsvend: the environment's keys sign; with
    none, the refusal names both and what to do."""
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[default]\ncredential_process = {_stsvend_line(api.url)}\n"
        f"[profile deploy-dev]\ncredential_process = {_stsvend_line(api.url)}\n")
    environment["AWS_PROFILE"] = "deploy-dev"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 0, done.stderr
    assert _signed_as(api) == "AKIAAMBIENTCALLER001"

    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    environment["XDG_CACHE_HOME"] = str(tmp_path / "cache-2")
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert done.stderr.startswith("stsvend: NoCredentials: no AWS credentials found outside "
                                  "profile 'deploy-dev' and 'default'")
    assert "--source-profile NAME" in done.stderr and "stsvend doctor" in done.stderr
    assert len(api.calls("POST", "/credentials")) == 1


def test_a_marker_stsvend_did_not_write_is_not_repeated(tmp_path: Path) -> None:
    """The inner run refuses on any marker, but repeats only one of stsvend's own form."""
    environment = base_env(tmp_path)
    environment["STSVEND_RESOLVING_CREDENTIALS"] = "x\x1b]0;evil\x07"
    done = run_cli("credentials", "--api", "http://127.0.0.1:9", "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert "stsvend-recursion" not in done.stderr and "\x1b" not in done.stderr
