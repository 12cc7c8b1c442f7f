"""An outsider's attacks on the client side (the credentials server of `exec`, the cache, `configure`),
each over the real command or a real socket, against the fake stsvend API of test_client."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import stsvend
from stsvend.client import api as client
from stsvend.client import credserver
from stsvend.client.renewal import RenewingCredentials
from stsvend.errors import CommandError
from tests.functional.test_client import (
    ROLE,
    ROOT,
    FakeApi,
    assert_no_secret,
    base_env,
    run_cli,
    vended_answer,
)
from tests.functional.test_credserver import get

OTHER_SECRET = "agent-alternate-secret-must-not-reach-the-child"

ENV_CHILD = "import json, os; print(json.dumps(dict(os.environ)))"


def test_exec_child_sees_no_credentials_under_the_names_other_sdks_read(
    api: FakeApi, tmp_path: Path
) -> None:
    """Go (v1, v2), Java v1 and Ruby read AWS_ACCESS_KEY / AWS_SECRET_KEY (Ruby AMAZON_* too) before
    the container endpoint, and Java v1 reads AWS_CREDENTIAL_PROFILES_FILE (default
    ~/.aws/credentials), not AWS_SHARED_CREDENTIALS_FILE: a child would run as the agent."""
    environment = base_env(tmp_path)
    environment.update(
        AWS_ACCESS_KEY="AKIAAGENTALTERNATE01", AWS_SECRET_KEY=OTHER_SECRET,
        AMAZON_ACCESS_KEY_ID="AKIAAGENTALTERNATE02", AMAZON_SECRET_ACCESS_KEY=OTHER_SECRET,
        AMAZON_SESSION_TOKEN=OTHER_SECRET,
        AWS_CREDENTIAL_PROFILES_FILE=str(tmp_path / "java-credentials"),
    )
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", ENV_CHILD, env=environment)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AMAZON_ACCESS_KEY_ID",
                 "AMAZON_SECRET_ACCESS_KEY", "AMAZON_SESSION_TOKEN"):
        assert name not in child
    assert OTHER_SECRET not in json.dumps(child)
    # Java v1's credentials file is the run's empty one, as every other SDK's.
    assert child["AWS_CREDENTIAL_PROFILES_FILE"] == child["AWS_SHARED_CREDENTIALS_FILE"]
    assert_no_secret(done.stdout, done.stderr)


def test_cache_clear_does_not_follow_a_symlink_planted_as_the_cache_directory(tmp_path: Path) -> None:
    """With XDG_CACHE_HOME on a shared directory, another user can plant `stsvend` as a symlink to
    any directory of the victim: `stsvend cache clear` must not delete the *.json files there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "project"
    victim.mkdir()
    (victim / "package.json").write_text("{}")
    (shared / "stsvend").symlink_to(victim)
    environment = {**base_env(tmp_path), "XDG_CACHE_HOME": str(shared)}

    done = run_cli("cache", "clear", env=environment)

    assert (victim / "package.json").read_text() == "{}"
    assert done.returncode == 1
    assert "stsvend: CacheUnavailable:" in done.stderr


def test_configure_writes_through_a_symlinked_config_file(api: FakeApi, tmp_path: Path) -> None:
    """~/.aws/config kept in a dotfiles repository is a symlink: it stays one, and the file it
    points at gets the profiles (with its mode), instead of being silently cut loose."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "aws-config"
    target.write_text("[default]\nregion = eu-west-1\n")
    target.chmod(0o640)
    link = tmp_path / "config"
    link.symlink_to(target)
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(link),
                   env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target
    text = target.read_text()
    assert text.startswith("[default]\nregion = eu-west-1\n\n[profile stsvend-deployer]\n")
    assert f"--role {ROLE}" in text
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in dotfiles.iterdir()] == ["aws-config"]


@pytest.mark.parametrize("bad", ["\n[profile evil]\ncredential_process = touch pwned", "\r", "\t", "\x00"])
def test_api_url_with_a_control_character_is_refused(bad: str) -> None:
    """urlsplit drops CR, LF and TAB silently, so such a URL passed the check and went as is into
    the credential_process line `configure` writes: a newline there starts a new profile."""
    with pytest.raises(CommandError) as raised:
        client.api_url(f"http://127.0.0.1:8000/api{bad}/v1", {})
    assert (raised.value.code, raised.value.exit_status) == ("InvalidApiUrl", 2)


def test_configure_refuses_a_role_that_would_become_the_default_profile(
    api: FakeApi, tmp_path: Path
) -> None:
    """`[profile default]` is the default profile to botocore and the CLI: with `--prefix ''`, a
    role named `default` would make every tool on the machine run as the vended role."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    api.reply("GET", "/roles", (200, {}, {"Roles": [
        {"RoleArn": "arn:aws:iam::222222222222:role/default"}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--prefix", "",
                   env=base_env(tmp_path))

    assert done.returncode == 2
    assert "as the default profile" in done.stderr and "nothing was written" in done.stderr
    assert config.read_text() == "[default]\nregion = eu-west-1\n"


def test_credentials_server_drops_a_connection_that_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any local user may connect to 127.0.0.1 (the token is checked only on a whole request): a
    connection that never completes its request must not hold a thread and a descriptor forever,
    or a few hundred of them starve the child's SDK of its renewals."""
    monkeypatch.setattr(credserver, "REQUEST_TIMEOUT_SECONDS", 0.5)
    server = credserver.CredentialServer(RenewingCredentials(vended_answer), lambda message: None)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
            stalled.sendall(b"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1")
            assert stalled.recv(1024) == b""  # closed by the server, not by this test's timeout
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as whole:
            whole.sendall(f"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"Authorization: {server.token}\r\n\r\n".encode())
            assert whole.recv(1024).startswith(b"HTTP/1.0 200 ")
    finally:
        server.stop()


def test_configure_dry_run_never_prints_a_secret_of_the_config_file(api: FakeApi, tmp_path: Path) -> None:
    """Keys may live in ~/.aws/config; the diff's context lines around an appended profile are the
    file's last lines, and a dry run in a CI job goes to its log."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\naws_access_key_id = AKIAUSERCONFIG000001\n"
                      f"aws_secret_access_key = {OTHER_SECRET}\naws_session_token = {OTHER_SECRET}\n")
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--dry-run",
                   env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert "+[profile stsvend-deployer]\n" in done.stdout
    assert OTHER_SECRET not in done.stdout + done.stderr


SLOW_PROCESS = """
import json, time
time.sleep(1.0)
print(json.dumps({"Version": 1, "AccessKeyId": "AKIASLOWPROCESS00001",
                  "SecretAccessKey": "slow-process-secret"}))
"""


def test_library_vends_from_two_threads_whose_ambient_credentials_load_at_once(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker variable set while ambient credentials load was deleted by whichever thread
    finished first: the other one's `del` raised KeyError out of the library."""
    script = tmp_path / "slow_process.py"
    script.write_text(SLOW_PROCESS)
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script}\n")
    for name in list(os.environ):
        if name.startswith(("AWS_", "STSVEND_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    outcomes: list[object] = []

    def vend() -> None:
        try:
            outcomes.append(stsvend.vend(ROLE, api_url=api.url).access_key_id)
        except Exception as exc:  # noqa: BLE001 - what the thread met is the assertion
            outcomes.append(exc)

    first = threading.Thread(target=vend)
    second = threading.Thread(target=vend)
    first.start()
    time.sleep(0.3)  # the second starts loading while the first's credential_process runs
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)

    assert outcomes == ["ASIAVENDEDBYFAKEAPI1", "ASIAVENDEDBYFAKEAPI1"]
    assert "STSVEND_RESOLVING_CREDENTIALS" not in os.environ


def test_configure_dry_run_redacts_a_secret_in_a_profile_it_rewrites(api: FakeApi, tmp_path: Path) -> None:
    """A line someone added to a profile `configure` wrote is among the removed lines of the diff."""
    from stsvend.client.configure import MARKER

    config = tmp_path / "config"
    config.write_text(f"[profile stsvend-deployer]\n{MARKER}\nAWS_Session_Token={OTHER_SECRET}\n")
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--dry-run",
                   env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert "-AWS_Session_Token= <redacted>\n" in done.stdout
    assert OTHER_SECRET not in done.stdout + done.stderr


def test_under_umask_000_nothing_the_cache_creates_is_open_to_others(api: FakeApi, tmp_path: Path) -> None:
    """XDG: a missing cache base directory is created 0700. `mkdir -p` semantics made the missing
    parents (e.g. ~/.cache itself) 0777 under a permissive umask: writable by every user."""
    environment = {**base_env(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache")}
    done = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", "credentials", "--api", api.url, "--role", ROLE],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: os.umask(0),  # noqa: PLW1509 - the permissive umask is the attack
    )
    assert done.returncode == 0, done.stderr
    created = [tmp_path / "home", tmp_path / "home" / ".cache", tmp_path / "home" / ".cache" / "stsvend"]
    files = list(created[-1].iterdir())
    assert {p.suffix for p in files} == {".json", ".lock"}
    for path in created:
        assert path.stat().st_mode & 0o777 == 0o700, path
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_clients_that_reset_their_connection_print_nothing_into_the_childs_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Any local user may connect and reset at once (SO_LINGER 0): socketserver printed a
    traceback into the child's stderr (a build log) for each such connection."""
    server = credserver.CredentialServer(RenewingCredentials(vended_answer), client.warn).start()
    try:
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as reset:
                reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                reset.sendall(b"GET /credentials HTTP/1.0\r\nHost: x\r\n\r\n")
        status, _ = get(server.url, server.token)
        assert status == 200
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_configure_sees_a_section_header_with_a_trailing_comment_as_botocore_does() -> None:
    """botocore's configparser reads `[profile NAME] ; note` as section NAME: appending another
    `[profile NAME]` made the file a duplicate-section error for every AWS tool."""
    from stsvend.client.configure import MARKER, profiles_for, updated_config

    profiles = profiles_for({"Roles": [{"RoleArn": ROLE}]}, "http://127.0.0.1:8000", "eu-west-1",
                            "stsvend-", ["stsvend"])
    with pytest.raises(CommandError, match="was not written by stsvend configure"):
        updated_config("[profile stsvend-deployer] ; my own\naws_access_key_id = AKIAMINE\n", profiles)
    ours = f"[profile stsvend-deployer]  # note\n{MARKER}\nold = 1\n[default]\nregion = x\n"
    assert updated_config(ours, profiles).count("[profile stsvend-deployer]") == 1
