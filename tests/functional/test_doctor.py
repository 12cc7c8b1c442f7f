"""`stsvend doctor` (issue 20 section 6): for a profile whose credential_process runs stsvend, each
step a run of it takes, the last failure recorded, and the outcome of running the line itself;
never a secret."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from tests.functional.fake_api import (
    AMBIENT_SECRET,
    ROLE,
    ROOT,
    FakeApi,
    assert_no_secret,
    base_env,
)

DEFAULT_KEY = "AKIADEFAULTPROFILE01"


def _jenkins(tmp_path: Path, api: FakeApi) -> dict[str, str]:
    """Keys in `[default]` of the credentials file, and a profile running stsvend."""
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    line = shlex.join([sys.executable, "-m", "stsvend.cli", "credentials", "--api", api.url,
                       "--role", ROLE])
    Path(environment["AWS_CONFIG_FILE"]).write_text(f"[profile deploy-dev]\ncredential_process = {line}\n")
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[default]\naws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = {AMBIENT_SECRET}\n")
    api.reply("GET", "/whoami", (200, {}, {
        "Arn": "arn:aws:iam::111111111111:user/jenkins", "IdentityMode": "iam"}))
    return environment


def _doctor(environment: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stsvend.cli", "doctor", *argv], env=environment,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_doctor_follows_the_profile_as_a_run_would(tmp_path: Path, api: FakeApi) -> None:
    environment = _jenkins(tmp_path, api)
    done = _doctor(environment, "--profile", "deploy-dev")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"API {api.url}, server id {api.url}, signed for region us-east-1, role {ROLE}" in out
    assert f"stsvend signs as profile 'default' (shared-credentials-file), access key id {DEFAULT_KEY}" in out
    assert "passed over profile 'deploy-dev': loading it runs stsvend" in out
    assert "the API sees arn:aws:iam::111111111111:user/jenkins (iam mode)" in out
    assert "cache: nothing valid for this line" in out
    assert "a run of the line gave credentials (until 20" in out
    assert_no_secret(out, done.stderr)

    again = _doctor({**environment, "AWS_PROFILE": "deploy-dev"})
    assert again.returncode == 0
    assert "cache: credentials for this line until 20" in again.stdout


def test_doctor_shows_the_failure_a_client_hid(tmp_path: Path, api: FakeApi) -> None:
    environment = _jenkins(tmp_path, api)
    api.reply("POST", "/credentials", (403, {}, {"Code": "CallerNotAllowed", "Message": "no grant",
                                                 "RequestId": "req-7"}))
    line = Path(environment["AWS_CONFIG_FILE"]).read_text().split("= ", 1)[1].strip()
    failed = subprocess.run(shlex.split(line), env={**environment, "AWS_PROFILE": "deploy-dev"},
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 3
    done = _doctor(environment, "--profile", "deploy-dev")
    assert done.returncode == 3
    assert "last failure recorded: 20" in done.stdout
    assert f"profile 'deploy-dev' role {ROLE}: CallerNotAllowed: no grant (exit 3)" in done.stdout
    assert "a run of the line exited 3: stsvend: CallerNotAllowed: no grant (request id req-7)" in done.stdout
    assert_no_secret(done.stdout, done.stderr)


def test_doctor_says_when_a_profile_is_not_one_of_stsvend(tmp_path: Path, api: FakeApi) -> None:
    environment = _jenkins(tmp_path, api)
    assert "no profile 'nope' in either file" in _doctor(environment, "--profile", "nope").stdout
    done = _doctor(environment, "--profile", "default")
    assert done.returncode == 2 and "has no credential_process" in done.stdout
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        "[profile broken]\ncredential_process = /nowhere/stsvend credentials --role x\n")
    done = _doctor(environment, "--profile", "broken")
    assert "'/nowhere/stsvend' is not an executable file or on this PATH" in done.stdout
    assert done.returncode != 0
