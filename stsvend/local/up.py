"""`stsvend local up` (`make run`), and what `stsvend local demo` shares with it.

Ports: STSVEND_EMULATOR_PORT (5000), STSVEND_API_PORT (8000) and STSVEND_GATEWAY_PORT (8001).
State (`local.json`, `env/`, `logs/`): STSVEND_LOCAL_DIR, default `.stsvend` in the checkout.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from stsvend.checkout.local_state import state_dir
from stsvend.local.seed import SAMPLE_APP
from stsvend.local.stack import LocalStack, LocalState

_WATCH_INTERVAL_SECONDS = 0.5


class Terminated(Exception):
    """SIGINT, SIGTERM or SIGHUP: stop the stack."""


@contextmanager
def stop_on_terminate() -> Iterator[None]:
    """Turn the signals that end a terminal session into an exception, so the servers (in their own
    process groups, out of the terminal's reach) are stopped on the way out. SIGINT is included:
    a shell starts background jobs with it ignored, and `kill -INT` should still stop the stack."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, terminate) for s in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def up(root: Path) -> int:
    stack = LocalStack.from_environment(root, state_dir(root))
    print(
        f"stsvend local: starting the AWS emulator on {stack.emulator.url} and the API on"
        f" {stack.api_url} ...",
        flush=True,
    )
    with stop_on_terminate():
        try:
            state = stack.start()
            print(ready_message(root, stack, state), flush=True)
            while (stopped := stack.stopped_server()) is None:
                time.sleep(_WATCH_INTERVAL_SECONDS)
            print(
                f"stsvend local: the {stopped.name} stopped unexpectedly (exit code"
                f" {stopped.exit_code()}); see {stopped.log_path}",
                file=sys.stderr,
            )
            return 1
        except Terminated:
            print("\nstsvend local: stopping ...", flush=True)
            return 0
        finally:
            stack.stop()


def _shown(root: Path, path: Path | str) -> str:
    """`path` relative to the checkout when it is inside it (as the user typed `make run` there)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def venv_command(name: str = "stsvend") -> str:
    """The command next to this interpreter (the venv's `stsvend`, and the AWS CLI the dev extras
    install), so the line works without activating the venv or having the CLI elsewhere."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def ready_message(root: Path, stack: LocalStack, state: LocalState) -> str:
    """How to use the stack. Secrets stay in the files; the screen shows where they are."""
    read_only = state.roles["read-only"]
    env_dir = _shown(root, stack.state_dir / "env")
    stsvend = _shown(root, venv_command())
    gateway = curl = ""
    if state.gateway_url is not None:
        gateway = (f"\n  gateway   {state.gateway_url}  (the API behind a local API Gateway: plain SigV4 for"
                   " execute-api, identity mode apigateway)")
        curl = f"""
Or sign with anything that speaks SigV4, as against a deployed stage, and call the gateway:
  curl --aws-sigv4 aws:amz:{state.region}:execute-api --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \\
      {state.gateway_url}/whoami
"""
    return f"""
stsvend local: ready.
  API       {state.api_url}  (stage local, identity mode sts-proof, server ids {", ".join(state.server_ids)})
  emulator  {state.emulator_url}  (IAM authentication on; accounts 111111111111, 222222222222){gateway}
  state     {_shown(root, stack.state_path)}  (identities and their emulator-only keys; mode 0600)
  logs      {_shown(root, state.logs["api"])} (one audit line per decision),
            {_shown(root, state.logs["emulator"])}

Call it as the STS sample application. {env_dir}/{SAMPLE_APP}.sh holds these exports and the
identity's emulator-only keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), kept off this screen:
  export AWS_ENDPOINT_URL={state.emulator_url} AWS_REGION={state.region} AWS_DEFAULT_REGION={state.region}
  export STSVEND_API_URL={state.api_url}
  . {env_dir}/{SAMPLE_APP}.sh        # or jenkins.sh, admin.sh
  {stsvend} whoami
  {stsvend} credentials --role {read_only} --format env

Or let an AWS SDK or the AWS CLI fetch the credentials itself; in ~/.aws/config:
  [profile stsvend-read-only]
  region = {state.region}
  endpoint_url = {state.emulator_url}
  credential_process = {venv_command()} credentials --api {state.api_url} --role {read_only}
then, in a shell where {env_dir}/{SAMPLE_APP}.sh is sourced (with --profile: given AWS_PROFILE
instead, the SDKs and the CLI take the sourced environment keys first and act as {SAMPLE_APP}):
  {_shown(root, venv_command("aws"))} ec2 describe-instances --profile stsvend-read-only
{curl}
Ctrl-C stops the servers.
"""
