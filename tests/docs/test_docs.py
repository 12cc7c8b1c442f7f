"""Docs that run. Every fenced block of the README and docs/*.md carries a run marker on the line
before it; `local` blocks run against a local stack in a copy of the checkout, with the exports the
`make run` banner prints (and `sample-app.sh` sourced) and the venv on PATH; `aws` blocks are
skipped, one visible skip each; JSON blocks marked `none` must parse. The README's Quick start runs
in order in the checkout, as a newcomer runs it, `make run` included, and its banner is the one
`make run` prints."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stsvend.local.process import free_port
from stsvend.local.stack import LocalStack
from tests.conftest import record_output, record_vended
from tests.docs.blocks import KINDS, ROOT, Block, all_blocks

BLOCKS = all_blocks()
README = ROOT / "README.md"
QUICK_START = "Quick start"
BLOCK_TIMEOUT_SECONDS = 300
READY_TIMEOUT_SECONDS = 240
# The banner's last line: everything `make run` prints up to it is the banner the README shows.
BANNER_END = "Ctrl-C stops the servers."
BANNER_START = "stsvend local: ready."
# Where the README's banner puts the checkout in the credential_process line.
CHECKOUT_SHOWN = "/path/to/stsvend"
DEFAULT_PORTS = {"emulator": 5000, "api": 8000, "gateway": 8001, "oidc": 8100}
# Secrets a block may print on stdout (`--format env`, `--format json`, `serve`'s token): each is
# handed to the suite's secret guard, which fails the run if one shows up on stderr or in a log.
_SECRETS = re.compile(
    r"(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_CONTAINER_AUTHORIZATION_TOKEN)=['\"]?([^'\"\s]+)"
    r"|\"(?:SecretAccessKey|SessionToken|Token)\":\s*\"([^\"]+)\""
)


def _where(block: Block) -> str:
    return block.where


def in_quick_start(block: Block) -> bool:
    return block.page == README and block.section == QUICK_START


def _of(kind: str) -> list[Block]:
    return [block for block in BLOCKS if block.kind == kind]


# --- every block -----------------------------------------------------------------------------


def test_the_pages_have_blocks_and_the_readme_a_quick_start() -> None:
    pages = {block.page for block in BLOCKS}
    assert README in pages and len(pages) > 5
    assert [block.kind for block in BLOCKS if in_quick_start(block)][:2] == ["local", "none"]


def test_every_block_carries_a_run_marker() -> None:
    missing = [block.where for block in BLOCKS if block.kind not in KINDS]
    assert not missing, (
        "put <!-- run: local|aws|none --> on the line before each of these blocks: "
        + ", ".join(missing)
    )


def test_local_blocks_are_shell_or_python() -> None:
    others = [f"{b.where} ({b.lang or 'no language'})" for b in _of("local")
              if b.lang not in ("sh", "bash", "python")]
    assert not others, "a local block is run by the shell or by python: " + ", ".join(others)


@pytest.mark.parametrize("block", [b for b in _of("none") if b.lang == "json"], ids=_where)
def test_a_json_block_parses(block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError:
        # An object's members shown on their own (`"userIdentity": {...}`) must parse as one.
        try:
            json.loads("{" + block.text + "}")
        except ValueError as error:
            pytest.fail(f"{block.where}: not JSON, nor an object's members: {error}")


@pytest.mark.parametrize("block", _of("aws"), ids=_where)
def test_an_aws_block_needs_an_account(block: Block) -> None:
    pytest.skip(f"{block.where} needs a real AWS account ({block.section})")


# --- running blocks --------------------------------------------------------------------------


def harvest_secrets(text: str) -> list[str]:
    """The secrets `text` prints, each registered with the suite's guard."""
    found = [first or second for first, second in _SECRETS.findall(text)]
    for secret in found:
        record_vended({"SecretAccessKey": secret})
    return found


def shown(done: subprocess.CompletedProcess[str], secrets: list[str]) -> str:
    """A block's output for a failure message, every secret it printed replaced."""
    text = f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def run_block(block: Block, text: str, cwd: Path, env: dict[str, str]) -> None:
    if block.lang == "python":
        argv, stdin = [str(cwd / ".venv" / "bin" / "python"), "-"], text
    else:
        argv, stdin = ["bash", "-e", "-c", text], None
    done = subprocess.run(argv, input=stdin, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_SECONDS, check=False)
    secrets = harvest_secrets(done.stdout)
    record_output(done.stderr)
    assert done.returncode == 0, f"{block.where}:\n{text}\n{shown(done, secrets)}"


def user_environment(home: Path) -> dict[str, str]:
    """A user's shell: nothing of AWS or stsvend set, a HOME of the test's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "STSVEND_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HOME=str(home), AWS_EC2_METADATA_DISABLED="true", PYTHONUNBUFFERED="1")
    return env


# The identity a page tells its reader to take (its opening says which env script to source);
# every other page's blocks run as `sample-app`, as the banner's examples do.
PAGE_IDENTITY = {"docs/client-exec.md": "jenkins"}


def stack_environment(
    workspace: Path, home: Path, stack: LocalStack, identity: str = "sample-app"
) -> dict[str, str]:
    """After the banner's exports, the identity's env script sourced and the venv activated."""
    env = user_environment(home)
    env.update(stack.state.environment(identity))
    env["PATH"] = f"{workspace / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.e2e
@pytest.mark.parametrize("block", [b for b in _of("local") if not in_quick_start(b)], ids=_where)
def test_a_local_block_runs(block: Block, workspace: Path, home: Path, docs_stack: LocalStack) -> None:
    identity = PAGE_IDENTITY.get(block.where.rsplit(":", 1)[0], "sample-app")
    run_block(block, block.text, workspace, stack_environment(workspace, home, docs_stack, identity))


# --- the Quick start, in order ----------------------------------------------------------------


class Background:
    """`make run` as a user starts it in a terminal: its own process group (Ctrl-C reaches the
    group), its output read as it comes."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None or text in self.output, (
                f"make run exited ({self.process.returncode}) before {text!r}:\n{self.output}")
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.output}"
            time.sleep(0.2)

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to the foreground process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, int]]]:
    """A user's environment in the checkout, with ports and a state directory of the test's own
    given to `make run` (5000, 8000, 8001 and `.stsvend` may be in use by the user's own stack)."""
    ports = {name: free_port() for name in DEFAULT_PORTS}
    home = tmp_path / "home"
    home.mkdir()
    state = tmp_path / "state"
    env = user_environment(home)
    env.update(STSVEND_EMULATOR_PORT=str(ports["emulator"]), STSVEND_API_PORT=str(ports["api"]),
               STSVEND_GATEWAY_PORT=str(ports["gateway"]), STSVEND_OIDC_PORT=str(ports["oidc"]),
               STSVEND_LOCAL_DIR=str(state))
    yield state, env, ports


def as_run_here(text: str, state: Path, ports: dict[str, int]) -> str:
    """A README block with the ports and the state directory the test's `make run` was given."""
    for name, default in DEFAULT_PORTS.items():
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    return re.sub(r"(?<![\w/.])\.stsvend/", f"{state}/", text)


def as_readme_shows(banner: str, state: Path, ports: dict[str, int]) -> str:
    """The banner with the README's ports, `.stsvend` and a placeholder for the checkout."""
    for name, default in DEFAULT_PORTS.items():
        banner = banner.replace(f":{ports[name]}", f":{default}")
    return banner.replace(str(state), ".stsvend").replace(str(ROOT), CHECKOUT_SHOWN)


def banner_of(output: str) -> str:
    start = output.index(BANNER_START)
    return output[start:output.index(BANNER_END, start) + len(BANNER_END)]


def make_commands(block: Block) -> list[str]:
    """The `make` commands of a set-up block (comments dropped), or [] for a script."""
    commands = [line.split("#", 1)[0].strip() for line in block.text.splitlines()]
    commands = [command for command in commands if command]
    return commands if commands and all(c.startswith("make ") for c in commands) else []


@pytest.mark.e2e
def test_the_readme_quick_start_runs_in_order(
    newcomer: tuple[Path, dict[str, str], dict[str, int]],
) -> None:
    state, env, ports = newcomer
    blocks = [block for block in BLOCKS if in_quick_start(block)]
    assert make_commands(blocks[0]) == ["make run", "make test"], "the two set-up commands come first"
    server: Background | None = None
    try:
        for block in blocks:
            if block.kind == "none":
                assert server is not None, f"{block.where}: a banner shown before `make run`"
                assert as_readme_shows(banner_of(server.output), state, ports) == block.text.strip()
                continue
            assert block.kind == "local", f"{block.where}: the Quick start runs without AWS"
            commands = make_commands(block)
            for command in commands:
                if command == "make run":
                    server = Background(["make", "run"], ROOT, env)
                    server.wait_for(BANNER_END, READY_TIMEOUT_SECONDS)
                elif command == "make test":
                    # The whole suite is what runs this test: here `make test` runs one file of it.
                    done = subprocess.run(["make", "test", "PYTEST_ARGS=tests/unit/test_layout.py"],
                                          cwd=ROOT, env=env, capture_output=True, text=True,
                                          timeout=BLOCK_TIMEOUT_SECONDS, check=False)
                    assert done.returncode == 0, shown(done, [])
                    assert " passed" in done.stdout
                else:
                    run_block(block, command, ROOT, env)
            if not commands:
                run_block(block, as_run_here(block.text, state, ports), ROOT, env)
        assert server is not None, "the Quick start starts the stack"
        assert server.process.poll() is None, f"make run stopped:\n{server.output}"
    finally:
        if server is not None:
            server.interrupt()
    assert "stsvend local: stopping" in server.output
    assert not (state / "local.json").exists(), "the keys die with the stack"
