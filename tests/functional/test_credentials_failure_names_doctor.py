"""Every failed `stsvend credentials` run says how to see why (issue 20 item 6).

Tools that run a profile's credential_process often hide its message (JS v3, Terraform, awscrt),
so a failure prints its one error line and then `stsvend: see why: stsvend doctor [--profile NAME]`
for the profile AWS_PROFILE selects. The hint is a command that runs, and never holds a secret or
an unvalidated name from the environment.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from tests.functional.fake_api import (
    AMBIENT_SECRET,
    ROLE,
    FakeApi,
    base_env,
    run_cli,
)

HINT = "stsvend: see why: stsvend doctor"


def _line(api_url: str) -> str:
    return shlex.join([sys.executable, "-m", "stsvend.cli", "credentials", "--api", api_url,
                       "--role", ROLE])


@pytest.mark.parametrize(
    ("reply", "exit_status", "first"),
    [
        ((403, {}, {"Code": "CallerNotAllowed", "Message": "no grant"}), 3,
         "stsvend: CallerNotAllowed: no grant"),
        ((503, {"Retry-After": "0"}, {"Code": "ServiceUnavailable", "Message": "later"}), 4,
         "stsvend: ServiceUnavailable: later"),
        ((200, {}, {"Version": 1}), 1, "stsvend: InvalidAnswer: "),
        ((400, {}, {"Code": "InvalidRequest", "Message": "bad role"}), 2,
         "stsvend: InvalidRequest: bad role"),
    ],
    ids=["denied", "unavailable", "invalid-answer", "bad-request"],
)
def test_a_failure_names_doctor_for_the_selected_profile(
    api: FakeApi, tmp_path: Path, reply: tuple[int, dict[str, str], object],
    exit_status: int, first: str,
) -> None:
    api.reply("POST", "/credentials", reply)
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy-dev]\ncredential_process = {_line(api.url)}\n")
    environment["AWS_PROFILE"] = "deploy-dev"
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == exit_status
    error, hint = done.stderr.splitlines()
    assert error.startswith(first)
    assert hint == f"{HINT} --profile deploy-dev"
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert AMBIENT_SECRET not in done.stderr


def test_a_local_failure_without_a_profile_names_doctor_without_one(tmp_path: Path) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    done = run_cli("credentials", "--api", "https://127.0.0.1:9/api", "--role", ROLE,
                   env=environment)
    assert done.returncode == 3
    error, hint = done.stderr.splitlines()
    assert error.startswith("stsvend: NoCredentials: ")
    assert hint == HINT


def test_a_malformed_api_url_names_doctor(tmp_path: Path) -> None:
    done = run_cli("credentials", "--api", "ftp://x", "--role", ROLE, env=base_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [HINT]


@pytest.mark.parametrize(
    "profile",
    ["deploy;rm -rf ~", "a\x1b[2Jb", "-x", "prof ile", "$(id)", "p" * 129, "déploy"],
    ids=["semicolon", "escape", "option-like", "space", "substitution", "too-long", "non-ascii"],
)
def test_a_profile_name_that_is_not_plain_is_never_printed(tmp_path: Path, profile: str) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    environment["AWS_PROFILE"] = profile
    done = run_cli("credentials", "--api", "https://127.0.0.1:9/api", "--role", ROLE,
                   env=environment)
    assert done.returncode == 3
    hint = done.stderr.splitlines()[-1]
    assert hint == f"{HINT} --profile NAME (the profile AWS_PROFILE names)"
    assert profile not in hint
    assert "\x1b" not in done.stderr  # nor does the error line send a control character


def test_the_hint_is_a_command_that_explains_the_failure(
    api: FakeApi, tmp_path: Path
) -> None:
    api.reply("POST", "/credentials", (403, {}, {"Code": "CallerNotAllowed", "Message": "no grant"}))
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[profile deploy-dev]\ncredential_process = {_line(api.url)}\n")
    environment["AWS_PROFILE"] = "deploy-dev"
    failed = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    command = shlex.split(failed.stderr.splitlines()[-1].removeprefix("stsvend: see why: "))
    assert command[:2] == ["stsvend", "doctor"]
    del environment["AWS_PROFILE"]  # the hint alone names the profile
    doctor = run_cli(*command[1:], env=environment)
    assert doctor.returncode == 3
    assert "profile 'deploy-dev'" in doctor.stdout + doctor.stderr
    assert "CallerNotAllowed" in doctor.stdout + doctor.stderr
    assert AMBIENT_SECRET not in doctor.stdout + doctor.stderr


def test_usage_errors_and_other_commands_are_unchanged(api: FakeApi, tmp_path: Path) -> None:
    usage = run_cli("credentials", "--api", api.url, "--role", ROLE, "--duration", "x",
                    env=base_env(tmp_path))
    assert usage.returncode == 2 and "see why" not in usage.stderr
    api.reply("POST", "/credentials", (403, {}, {"Code": "RoleNotGranted", "Message": "no"}))
    exec_run = run_cli("exec", "--api", api.url, "--role", ROLE, "--", "true", env=base_env(tmp_path))
    assert exec_run.stderr == "stsvend: RoleNotGranted: no\n"
