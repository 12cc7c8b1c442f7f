"""The running stack's state directory: 0700, and every file in it 0600 (local.json, env/*.sh, the
servers' logs, the emulator's request recording)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stsvend.local.stack import LocalStack


def test_every_file_of_the_running_stack_is_its_owners_only(stack: LocalStack) -> None:
    seen = []
    assert stat.S_IMODE(stack.state_dir.stat().st_mode) == 0o700
    for parent, directories, names in os.walk(stack.state_dir):
        for name in directories:
            assert stat.S_IMODE(Path(parent, name).stat().st_mode) == 0o700, name
        for name in names:
            assert stat.S_IMODE(Path(parent, name).stat().st_mode) == 0o600, name
            seen.append(Path(parent, name).relative_to(stack.state_dir).as_posix())
    assert {"local.json", "env/admin.sh", "logs/api.log", "logs/api.err.log", "logs/emulator.log"} <= set(
        seen
    )
    assert "emulator-requests.jsonl" in seen
