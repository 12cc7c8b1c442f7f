"""What `stsvend serve` writes carries the endpoint's token, which fetches the role's credentials
from 127.0.0.1 for anyone who has it: it never lands where another local user can read it.

`--env-file PATH` makes a new 0600 file (never an existing file or a symbolic link's target) and
removes it when serve stops; stdout redirected to a file others can read (`serve > stsvend.env`
under the usual umask) is refused before anything is written or vended.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from tests.functional.fake_api import ROLE, ROOT, FakeApi, assert_no_secret, base_env, run_cli
from tests.functional.test_credserver import get

TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"


def start_serve(
    api: FakeApi, tmp_path: Path, *options: str, stdout: int | IO[str] = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "serve", "--api", api.url, "--role", ROLE, *options],
        env=base_env(tmp_path), cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
        umask=0o022,
    )


def wait_for(process: subprocess.Popen[str], text: str) -> str:
    assert process.stderr is not None
    line = process.stderr.readline()
    assert text in line, line
    return line


def exports(text: str) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines())


def test_env_file_is_a_new_file_only_its_owner_can_read_removed_at_stop(
    api: FakeApi, tmp_path: Path
) -> None:
    path = tmp_path / "stsvend.env"
    process = start_serve(api, tmp_path, "--env-file", str(path))
    try:
        line = wait_for(process, "serving credentials")
        assert str(path) in line
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        written = exports(path.read_text())
        assert sorted(written) == ["AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        status, body = get(written["AWS_CONTAINER_CREDENTIALS_FULL_URI"], written[TOKEN_VARIABLE])
        assert status == 200 and body["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == ""  # nothing on stdout: the token is in the file only
    assert written[TOKEN_VARIABLE] not in err
    assert not path.exists()
    assert_no_secret(out, err)


@pytest.mark.parametrize("kind", ["file", "symlink to nothing", "symlink to a file"])
def test_env_file_never_writes_through_an_existing_path(
    api: FakeApi, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "stsvend.env"
    target = tmp_path / "target"
    if kind == "file":
        path.write_text("keep me\n")
    else:
        if kind == "symlink to a file":
            target.write_text("keep me\n")
        path.symlink_to(target)
    done = run_cli("serve", "--api", api.url, "--role", ROLE, "--env-file", str(path),
                   env=base_env(tmp_path))

    assert done.returncode == 2
    assert done.stderr.startswith(f"stsvend: EnvFileExists: {path} exists")
    assert api.received == []
    if kind == "symlink to nothing":
        assert not target.exists()
    else:
        assert (target if kind != "file" else path).read_text() == "keep me\n"


def test_stdout_to_a_file_others_can_read_is_refused_before_anything_is_written(
    api: FakeApi, tmp_path: Path
) -> None:
    path = tmp_path / "stsvend.env"
    with path.open("w") as handle:  # as `serve > stsvend.env` makes it under umask 022
        path.chmod(0o644)
        process = start_serve(api, tmp_path, stdout=handle)
        _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert err.startswith("stsvend: TokenWouldLeak: stdout is a file others can read (mode 0644)")
    assert "--env-file PATH" in err
    assert path.read_text() == ""
    assert api.received == []


def test_stdout_to_a_file_only_its_owner_can_read_gets_the_exports(
    api: FakeApi, tmp_path: Path
) -> None:
    path = tmp_path / "stsvend.env"
    path.touch(mode=0o600)
    with path.open("w") as handle:
        process = start_serve(api, tmp_path, stdout=handle)
        try:
            wait_for(process, "serving credentials")
            written = exports(path.read_text())
            assert get(written["AWS_CONTAINER_CREDENTIALS_FULL_URI"], written[TOKEN_VARIABLE])[0] == 200
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    assert process.returncode == 0
