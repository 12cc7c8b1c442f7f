"""The local stack's state directory is its owner's only: the directory and every directory in it
0700, every file in it (local.json, env/*.sh, logs/*.log, the emulator's recording) 0600, also when
it existed before with looser modes."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from stsvend.local.process import LOOPBACK, ManagedProcess, StackError, free_port, make_private
from stsvend.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def loose_state_dir(state_dir: Path) -> list[Path]:
    """A state directory as an older run or a careless umask left it: everything world-readable."""
    files = [
        state_dir / "local.json",
        state_dir / "env" / "admin.sh",
        state_dir / "logs" / "api.log",
        state_dir / "emulator-requests.jsonl",
        state_dir / "logs" / "old" / "emulator.log",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
        os.chmod(path, 0o644)
    for directory in (state_dir, state_dir / "env", state_dir / "logs", state_dir / "logs" / "old"):
        os.chmod(directory, 0o755)
    return files


def assert_private(state_dir: Path) -> None:
    assert mode(state_dir) == 0o700
    for parent, directories, names in os.walk(state_dir):
        for name in directories:
            assert mode(Path(parent, name)) == 0o700, Path(parent, name)
        for name in names:
            assert mode(Path(parent, name)) == 0o600, Path(parent, name)


def test_make_private_tightens_an_existing_tree(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    files = loose_state_dir(state_dir)
    make_private(state_dir)
    assert_private(state_dir)
    assert all(path.read_text(encoding="utf-8") == "x" for path in files)


def test_make_private_leaves_what_a_link_points_to_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the stack's", encoding="utf-8")
    os.chmod(outside, 0o644)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "link").symlink_to(outside)
    make_private(state_dir)
    assert mode(outside) == 0o644


def test_starting_the_stack_tightens_an_existing_state_dir_first(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    loose_state_dir(state_dir)
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        stack = LocalStack(ROOT, state_dir, emulator_port=free_port(), api_port=busy.getsockname()[1])
        # The stack stops at the busy port, before any server starts: the tightening came first.
        with pytest.raises(StackError, match="already in use"):
            stack.start()
    assert_private(state_dir)


def test_server_logs_are_private_also_when_they_existed_and_the_umask_is_loose(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    existing = logs / "api.log"
    existing.write_text("an old run's audit lines", encoding="utf-8")
    os.chmod(existing, 0o644)
    previous = os.umask(0o022)
    try:
        process = ManagedProcess(
            "a server",
            [sys.executable, "-c", "print('served')"],
            existing,
            dict(os.environ),
            errors_path=logs / "api.err.log",
        )
        process.start()
    finally:
        os.umask(previous)
    process.stop()
    assert mode(existing) == 0o600
    assert mode(logs / "api.err.log") == 0o600
    assert "an old run" not in existing.read_text(encoding="utf-8")


def running_stack_state(state_dir: Path, api_port: int, emulator_port: int) -> str:
    state_dir.mkdir(parents=True, exist_ok=True)
    text = (
        f'{{"api_url": "http://127.0.0.1:{api_port}", "emulator_url": "http://127.0.0.1:{emulator_port}",'
        ' "identities": {"admin": {"secret_access_key": "the first stack\'s"}}}\n'
    )
    (state_dir / "local.json").write_text(text, encoding="utf-8")
    (state_dir / "env").mkdir(exist_ok=True)
    (state_dir / "env" / "admin.sh").write_text("export AWS_ACCESS_KEY_ID=first\n", encoding="utf-8")
    (state_dir / "logs").mkdir(exist_ok=True)
    (state_dir / "logs" / "api.log").write_text('{"event": "credentials.vended"}\n', encoding="utf-8")
    return text


def test_a_second_stack_in_the_state_dir_of_a_running_one_is_refused_and_leaves_its_files(
    tmp_path: Path,
) -> None:
    # Before: a second `make run` on other ports overwrote the first stack's local.json, env scripts
    # and logs, and deleted them when it stopped, while the first stack kept running.
    state_dir = tmp_path / "state"
    with socket.socket() as api:
        api.bind((LOOPBACK, 0))
        api.listen()
        api_port = api.getsockname()[1]
        text = running_stack_state(state_dir, api_port, free_port())
        stack = LocalStack(ROOT, state_dir, emulator_port=free_port(), api_port=free_port())
        with pytest.raises(StackError, match="another local stack is running") as refused:
            stack.start()
    assert "STSVEND_LOCAL_DIR" in refused.value.message
    assert f"http://127.0.0.1:{api_port}" in refused.value.message
    # Nothing started: no server log opened (which would have emptied the running stack's).
    assert (state_dir / "logs" / "api.log").read_text(encoding="utf-8") == '{"event": "credentials.vended"}\n'
    assert not (state_dir / "logs" / "emulator.log").exists()
    assert (state_dir / "local.json").read_text(encoding="utf-8") == text
    assert (state_dir / "env" / "admin.sh").read_text(encoding="utf-8") == "export AWS_ACCESS_KEY_ID=first\n"


@pytest.mark.parametrize(
    "content",
    [
        None,  # what a stack that died left behind, naming ports nothing listens on
        "not json",
        '["a list"]',
        '{"api_url": 8000, "emulator_url": "http://example.com:80"}',
        '{"api_url": "http://127.0.0.1:notaport"}',
    ],
)
def test_a_state_file_naming_no_running_stack_does_not_stop_a_start(
    tmp_path: Path, content: str | None
) -> None:
    state_dir = tmp_path / "state"
    if content is None:
        running_stack_state(state_dir, free_port(), free_port())
    else:
        state_dir.mkdir()
        (state_dir / "local.json").write_text(content, encoding="utf-8")
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        stack = LocalStack(ROOT, state_dir, emulator_port=free_port(), api_port=busy.getsockname()[1])
        # It goes on to the next check (the busy API port), past the stale file.
        with pytest.raises(StackError, match="already in use"):
            stack.start()
