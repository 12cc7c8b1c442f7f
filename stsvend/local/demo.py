"""`stsvend local demo`: the local stack on free ports, the two examples and one denied request.

Each step prints what it did and whether it behaved as described; the exit code is 0 only if all
did. The stack's logs are kept (and named) when a step fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stsvend.checkout.local_state import state_dir
from stsvend.local.demo_oidc import github_job
from stsvend.local.seed import SAMPLE_APP
from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from stsvend.local.up import stop_on_terminate

STEP_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: str


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[Path, LocalStack], Outcome]


def _example(name: str, *args: str) -> Callable[[Path, LocalStack], Outcome]:
    def run(root: Path, stack: LocalStack) -> Outcome:
        result = subprocess.run(  # noqa: S603 - our own example, no shell
            [sys.executable, str(root / "examples" / name), "--config", str(stack.state_path), *args],
            env=hermetic_environment(),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
        return Outcome(result.returncode == 0, result.stdout + result.stderr)

    return run


def _role_not_granted(root: Path, stack: LocalStack) -> Outcome:
    """sample-app asks for `deployer`, which its grant does not list: 403 RoleNotGranted."""
    state: LocalState = stack.state
    role = state.roles["deployer"]
    result = subprocess.run(  # noqa: S603 - our own command, no shell
        [
            sys.executable,
            "-m",
            "stsvend.cli",
            "credentials",
            "--role",
            role,
            "--format",
            "json",
            "--no-cache",
        ],
        env={**hermetic_environment(), **state.environment(SAMPLE_APP)},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )
    shown = f"$ stsvend credentials --role {role}   # as {state.identities[SAMPLE_APP].arn}\n"
    # Printed only when it is the expected refusal: stderr then holds only Code and Message.
    if result.returncode != 0 and "RoleNotGranted" in result.stderr and not result.stdout:
        return Outcome(
            True,
            shown + result.stderr + f"refused (exit code {result.returncode}),"
            " as expected: the grant does not include this role\n",
        )
    vended = _looks_vended(result.stdout)
    return Outcome(
        False,
        shown
        + (
            "credentials were vended for a role the caller was not granted\n"
            if vended
            else f"unexpected answer (exit code {result.returncode})\n"
        ),
    )


def _looks_vended(stdout: str) -> bool:
    try:
        return "AccessKeyId" in json.loads(stdout)
    except ValueError:
        return False


STEPS = (
    Step(
        "The STS sample application: denied on its own, allowed with credentials from stsvend",
        _example("sample_app.py"),
    ),
    Step(
        "Jenkins deploys to the development account with a cross-account role",
        _example("jenkins_cross_account.py", "--build-id", "demo-1", "--job-name", "demo"),
    ),
    Step("A request for a role the caller was not granted", _role_not_granted),
    Step(
        "A GitHub Actions job without AWS credentials: its OIDC token gets read-only, its pull request not",
        lambda root, stack: Outcome(*github_job(root, stack)),
    ),
)


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.rstrip("\n").splitlines())


def demo(root: Path) -> int:
    base = state_dir(root)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    demo_dir = Path(tempfile.mkdtemp(prefix="demo-", dir=base))
    print("stsvend local demo: starting the local stack on free ports ...", flush=True)
    passed = 0
    with stop_on_terminate(), LocalStack.on_free_ports(root, demo_dir) as stack:
        state = stack.state
        print(f"  API {state.api_url}, emulator {state.emulator_url} (IAM authentication on)\n", flush=True)
        for number, step in enumerate(STEPS, start=1):
            print(f"[{number}/{len(STEPS)}] {step.title}", flush=True)
            outcome = step.run(root, stack)
            print(_indent(outcome.output), end="")
            print(f"    -> {'ok' if outcome.ok else 'FAILED'}\n", flush=True)
            passed += outcome.ok
    if passed == len(STEPS):
        shutil.rmtree(demo_dir, ignore_errors=True)
        print(f"Demo passed: all {len(STEPS)} steps behaved as described.")
        return 0
    print(
        f"Demo FAILED: {len(STEPS) - passed} of {len(STEPS)} steps did not behave as described."
        f" The stack's logs are in {demo_dir / 'logs'}."
    )
    return 1
