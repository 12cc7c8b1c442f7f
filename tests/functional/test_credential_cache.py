"""The credential cache as `stsvend credentials` uses it, over the real command: an entry is served
only under its own key, from a directory only its user can write (created so even under umask
000), for the caller's current keys; `stsvend cache clear` forgets every answer and never
follows a planted symbolic link. (The cache's own logic: tests/unit/test_client_cache.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stsvend import cli
from tests.functional.fake_api import (
    ROLE,
    ROOT,
    FakeApi,
    base_env,
    cached_entries,
    run_cli,
    vended_answer,
)


def test_an_entry_moved_under_another_key_is_not_served(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    other = "arn:aws:iam::222222222222:role/other"
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 0
    [deployer_entry] = cached_entries(env)
    api.reply("POST", "/credentials", (200, {}, {**vended_answer(), "AccessKeyId": "ASIAOTHERROLEKEY0001"}))
    assert cli.main(["credentials", "--api", api.url, "--role", other]) == 0
    [other_entry] = [p for p in cached_entries(env) if p != deployer_entry]
    capsys.readouterr()
    # Swap: the deployer's key now names the other role's file.
    os.replace(other_entry, deployer_entry)
    api.reply("POST", "/credentials", (200, {}, vended_answer()))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    assert len(api.calls("POST", "/credentials")) == 3


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_cache_directory_others_can_write_is_not_read(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0
    directory = Path(env["XDG_CACHE_HOME"]) / "stsvend"
    os.chmod(directory, mode)
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert len(api.calls("POST", "/credentials")) == 2  # not a hit: asked the API again
    assert (directory.stat().st_mode & 0o777) == 0o700  # and the directory is tightened


def test_cache_clear_forgets_every_answer(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 1
    assert cli.main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.endswith(
        f"removed 1 cached answer(s) from {Path(env['XDG_CACHE_HOME']) / 'stsvend'}\n"
    )
    assert cached_entries(env) == []
    assert cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 2


def test_new_keys_in_the_credentials_file_are_a_new_cache_entry(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A profile-based caller after `make run` restarted: same profile name, new keys in the file.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    credentials.write_text("[default]\naws_access_key_id = AKIAFIRSTSTACK000001\n"
                           "aws_secret_access_key = first-stack-secret\n")
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    assert len(api.calls("POST", "/credentials")) == 1
    credentials.write_text("[default]\naws_access_key_id = AKIASECONDSTACK00001\n"
                           "aws_secret_access_key = second-stack-secret\n")
    assert cli.main(argv) == 0
    capsys.readouterr()
    calls = api.calls("POST", "/credentials")
    assert len(calls) == 2
    assert "Credential=AKIASECONDSTACK00001/" in calls[1].headers["Authorization"]


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
