"""Benchmark 4, client cache hit, whole-process wall time on the local stack:

- `stsvend credentials --format process` answered from a warm cache vs `python -c pass` (the same
  interpreter: the floor of any Python command);
- what an AWS CLI user feels: `aws sts get-caller-identity` (awscli v1) against the emulator with
  a profile whose `credential_process` is stsvend vs a native profile with `role_arn` +
  `source_profile` (the CLI's own assume-role cache in ~/.aws/cli/cache). Both caches are warmed
  first; both profiles hold credentials for the same role (Jenkins' cross-account deployer).

Every process runs with a private HOME, cache and config, and with Python's bytecode cache on (in a
private directory), as after a pip install.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bench.common import PYTHON, comparison, interleaved
from bench.endtoend import client_environment
from bench.events import DEPLOYER

NAME = "client_cache"
TITLE = "Client cache hit (whole processes)"
HIT_ROUNDS = 40
CLI_ROUNDS = 15
HIT_GOAL = 3.0
CLI_GOAL = 1.1
BIN = Path(PYTHON).parent
STSVEND = [str(BIN / "stsvend"), "credentials", "--role", DEPLOYER, "--format", "process"]


def write_aws_files(directory: Path, state: Any) -> dict[str, str]:
    """~/.aws/config and credentials for the two profiles; returns the variables naming them."""
    admin = state.identities["admin"]
    config = directory / "config"
    config.write_text(
        "[profile stsvend]\n"
        f"region = {state.region}\n"
        f"credential_process = {' '.join(STSVEND)}\n"
        "\n"
        "[profile native]\n"
        f"region = {state.region}\n"
        f"role_arn = {DEPLOYER}\n"
        "external_id = stsvend-local\n"
        "source_profile = base\n"
        "\n"
        "[profile base]\n"
        f"region = {state.region}\n",
        encoding="utf-8",
    )
    credentials = directory / "credentials"
    credentials.write_text(
        f"[base]\naws_access_key_id = {admin.access_key_id}\n"
        f"aws_secret_access_key = {admin.secret_access_key}\n",
        encoding="utf-8",
    )
    credentials.chmod(0o600)
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}


def run(context: Any) -> dict[str, Any]:
    state = context.local_stack().state
    scratch = context.scratch(NAME)
    home = scratch / "home"
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    env = {**client_environment(state, "jenkins", scratch), "HOME": str(home)}
    env.update(write_aws_files(home / ".aws", state))

    def process(argv: list[str]) -> Any:
        def once() -> None:
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, timeout=60)

        return once

    python_pass = process([PYTHON, "-c", "pass"])
    stsvend_hit = process(STSVEND)
    aws = [str(BIN / "aws"), "sts", "get-caller-identity", "--profile"]
    via_stsvend, native = process([*aws, "stsvend"]), process([*aws, "native"])
    for warm in (python_pass, stsvend_hit, via_stsvend, native):  # fills every cache once
        warm()
    hit, floor = interleaved(HIT_ROUNDS, stsvend_hit, python_pass)
    with_stsvend, with_native = interleaved(CLI_ROUNDS, via_stsvend, native)
    return {
        "title": TITLE,
        "comparisons": [
            comparison("stsvend credentials, warm cache vs python -c pass", hit, floor, HIT_GOAL,
                       "stsvend credentials --format process", "python -c pass",
                       f"{HIT_ROUNDS} processes each, interleaved"),
            comparison("aws sts get-caller-identity: credential_process stsvend vs native role profile",
                       with_stsvend, with_native, CLI_GOAL, "profile with credential_process = stsvend",
                       "profile with role_arn + source_profile", f"{CLI_ROUNDS} processes each, interleaved"),
        ],
        "awscli": _aws_version(env),
    }


def _aws_version(env: dict[str, str]) -> str:
    answer = subprocess.run([str(BIN / "aws"), "--version"], env=env, capture_output=True, text=True,
                            check=False, timeout=60)
    return (answer.stdout or answer.stderr).strip()
