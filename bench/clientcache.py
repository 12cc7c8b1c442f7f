"""Benchmark 4, client cache hit, whole-process wall time on the local stack:

- `stsvend credentials --format process` answered from a warm cache vs `python -c pass` (the same
  interpreter: the floor of any Python command);
- what an AWS CLI user feels: `aws sts get-caller-identity` (awscli v1) against the emulator with
  a profile whose `credential_process` is stsvend vs a native profile with `role_arn` +
  `source_profile` (the CLI's own assume-role cache in ~/.aws/cli/cache). Both caches are warmed
  first; both profiles hold credentials for the same role (Jenkins' cross-account deployer).

Measured in a regular installation, the goal's setting: a scratch virtualenv holding a plain copy
of the stsvend package and a console script as pip writes it, its dependencies (botocore, awscli)
reached through a .pth file. The project's own .venv has stsvend installed editable, and the
import hook of an editable install costs every Python process in it ~10 ms before `pass` runs, so
the same two comparisons in .venv are reported beside it. Every process runs with a private HOME,
cache and AWS config, and with Python's bytecode cache on (in a private directory).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, comparison, interleaved, run_process
from bench.endtoend import client_environment
from bench.events import DEPLOYER

NAME = "client_cache"
TITLE = "Client cache hit (whole processes)"
HIT_ROUNDS = 40
CLI_ROUNDS = 30
HIT_GOAL = 3.0
CLI_GOAL = 1.1
DEV_BIN = Path(PYTHON).parent
CONSOLE_SCRIPT = "import sys\nfrom stsvend.cli import main\nsys.exit(main())\n"


def regular_install(directory: Path) -> Path:
    """A virtualenv with stsvend installed as a plain package (not editable); returns its python."""
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=120)
    python = directory / "bin" / "python"
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip())
    shutil.copytree(ROOT / "stsvend", purelib / "stsvend", ignore=shutil.ignore_patterns("__pycache__"))
    (purelib / "bench-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    script = directory / "bin" / "stsvend"
    script.write_text(f"#!{python}\n{CONSOLE_SCRIPT}", encoding="utf-8")
    script.chmod(0o755)
    return python


def write_aws_files(directory: Path, state: Any, stsvend: list[str]) -> dict[str, str]:
    """~/.aws/config and credentials for the two profiles; returns the variables naming them."""
    admin = state.identities["admin"]
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    config.write_text(
        "[profile stsvend]\n"
        f"region = {state.region}\n"
        f"credential_process = {' '.join(stsvend)}\n"
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
    credentials.touch(mode=0o600)
    credentials.write_text(
        f"[base]\naws_access_key_id = {admin.access_key_id}\n"
        f"aws_secret_access_key = {admin.secret_access_key}\n",
        encoding="utf-8",
    )
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}


def measure(state: Any, scratch: Path, python: Path, where: str) -> list[dict[str, Any]]:
    """Both comparisons with `python` (and the stsvend script beside it)."""
    stsvend = [str(python.parent / "stsvend"), "credentials", "--role", DEPLOYER, "--format", "process"]
    home = scratch / "home"
    env = {**client_environment(state, "jenkins", scratch), "HOME": str(home)}
    env.update(write_aws_files(home / ".aws", state, stsvend))

    def process(argv: list[str]) -> Any:
        return lambda: run_process(argv, env)

    python_pass, stsvend_hit = process([str(python), "-c", "pass"]), process(stsvend)
    aws = [str(python), str(DEV_BIN / "aws"), "sts", "get-caller-identity", "--profile"]
    via_stsvend, native = process([*aws, "stsvend"]), process([*aws, "native"])
    for warm in (python_pass, stsvend_hit, via_stsvend, native):  # fills every cache once
        warm()
    hit, floor = interleaved(HIT_ROUNDS, stsvend_hit, python_pass)
    with_stsvend, with_native = interleaved(CLI_ROUNDS, via_stsvend, native)
    goals = (HIT_GOAL, CLI_GOAL) if where == "regular install" else (None, None)
    return [
        comparison(f"{where}: stsvend credentials, warm cache vs python -c pass", hit, floor, goals[0],
                   "stsvend credentials --format process", "python -c pass",
                   f"{HIT_ROUNDS} processes each, interleaved"),
        comparison(f"{where}: aws sts get-caller-identity, credential_process stsvend vs native",
                   with_stsvend, with_native, goals[1], "profile with credential_process = stsvend",
                   "profile with role_arn + source_profile", f"{CLI_ROUNDS} processes each, interleaved"),
    ]


def run(context: Any) -> dict[str, Any]:
    state = context.local_stack().state
    regular = regular_install(context.scratch(NAME) / "venv")
    comparisons = measure(state, context.scratch(f"{NAME}-regular"), regular, "regular install")
    comparisons += measure(state, context.scratch(f"{NAME}-dev"), Path(PYTHON), "project .venv (editable)")
    version = subprocess.run([str(DEV_BIN / "aws"), "--version"], capture_output=True, text=True,
                             check=False, timeout=60)
    return {"title": TITLE, "comparisons": comparisons, "awscli": (version.stdout or version.stderr).strip()}
