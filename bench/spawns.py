"""How often a real client runs stsvend (spawns) and how often stsvend asks the API (vends), for the
AWS CLI v1 and a long-lived boto3 client, with 900 s and 3600 s credentials, over two credential
lifetimes on the local stack: boto3 makes a call every simulated minute, the AWS CLI is run 10
times. `python -m bench.spawns` prints the table, per 10 calls.

An hour is simulated, not waited for: a clock file holds the simulated time of the next call and
of the last vend. Every process involved reads its clock as the real time plus the simulated time
since the last vend: botocore (its RefreshableCredentials' time source, in the client processes)
and stsvend (`time.time`, in a shim that runs `stsvend credentials`). Credentials are vended by the
real API with real expiry times, so the simulated age of the newest credentials is exactly the
simulated time since they were vended; when the shim sees a vend it resets that age to zero. The
clients' refresh windows (botocore's 15 and 10 minutes) and stsvend's are the real ones.

    python -m bench.spawns shim ARG...         stsvend credentials ARG..., counted (the profile's
                                               credential_process)
    python -m bench.spawns aws ARG...          the AWS CLI on the simulated clock
    python -m bench.spawns boto3 CALLS STEP    one boto3 client, CALLS calls STEP simulated s apart
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

CLOCK_ENV = "STSVEND_BENCH_CLOCK"
COUNTS_ENV = "STSVEND_BENCH_COUNTS"
CLI_CALLS = 10
BOTO3_STEP = 60.0
PROFILE = "spawn-counted"


# -- the simulated clock -------------------------------------------------------------------------


def _read_clock() -> dict[str, float]:
    state: dict[str, float] = json.loads(Path(os.environ[CLOCK_ENV]).read_text())
    return state


def _write_clock(**changes: float) -> None:
    path = Path(os.environ[CLOCK_ENV])
    path.write_text(json.dumps({**_read_clock(), **changes}))


def simulated_offset() -> float:
    state = _read_clock()
    return state["now"] - state["vended"]


def _count(what: str) -> None:
    with open(os.environ[COUNTS_ENV], "a", encoding="utf-8") as counts:
        counts.write(what + "\n")


def patch_botocore() -> None:
    """botocore's credentials read the simulated clock (the default argument every instance gets)."""
    from botocore import credentials

    real = credentials._local_now

    def simulated_now() -> Any:
        return real() + timedelta(seconds=simulated_offset())

    init = credentials.RefreshableCredentials.__init__
    assert init.__defaults__ is not None
    init.__defaults__ = tuple(simulated_now if d is real else d for d in init.__defaults__)


# -- the processes --------------------------------------------------------------------------------


def shim(argv: list[str]) -> int:
    import time

    _count("spawn")
    offset = [simulated_offset()]
    real = time.time
    time.time = lambda: real() + offset[0]  # before stsvend is imported: its cache binds it

    from stsvend.cli import main
    from stsvend.client import calls as api

    vend = api.vend

    def counted_vend(*args: Any, **kwargs: Any) -> Any:
        # From here on the newest credentials are the ones being vended: simulated age zero (the
        # answer's checks and the cache see them as new, as they are).
        offset[0] = 0.0
        answer = vend(*args, **kwargs)
        _count("vend")
        _write_clock(vended=_read_clock()["now"])
        return answer

    api.vend = counted_vend
    return main(argv)


def aws(argv: list[str]) -> int:
    patch_botocore()
    from awscli.clidriver import main

    sys.argv = ["aws", *argv]
    return int(main())


def boto3_calls(calls: int, step: float) -> int:
    patch_botocore()
    import boto3

    client = boto3.client("sts")
    for call in range(calls):
        _write_clock(now=call * step)
        client.get_caller_identity()
    return 0


# -- the measurement --------------------------------------------------------------------------------


def measure(
    state: Any, directory: Path, client: str, duration: int, refresh_window: int | None = None
) -> dict[str, int]:
    """Calls, spawns and vends over two lifetimes of `duration` s credentials (with stsvend's
    default refresh window, or `refresh_window`)."""
    directory.mkdir(parents=True, exist_ok=True)
    me = state.identities["sample-app"]
    line = shlex.join([sys.executable, "-m", "bench.spawns", "shim", "credentials",
                       "--api", state.api_url, "--role", state.roles["read-only"],
                       "--duration", str(duration), "--source-profile", "base",
                       *([] if refresh_window is None else ["--refresh-window", str(refresh_window)])])
    (directory / "config").write_text(
        f"[profile {PROFILE}]\nregion = {state.region}\ncredential_process = {line}\n")
    (directory / "credentials").write_text(
        f"[base]\naws_access_key_id = {me.access_key_id}\n"
        f"aws_secret_access_key = {me.secret_access_key}\n")
    clock, counts = directory / "clock.json", directory / "counts"
    clock.write_text(json.dumps({"now": 0.0, "vended": 0.0}))
    counts.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env.update(
        AWS_PROFILE=PROFILE,
        AWS_CONFIG_FILE=str(directory / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(directory / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=state.emulator_url,
        AWS_REGION=state.region,
        AWS_DEFAULT_REGION=state.region,
        XDG_CACHE_HOME=str(directory / "cache"),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        **{CLOCK_ENV: str(clock), COUNTS_ENV: str(counts)},
    )
    calls = int(2 * duration / BOTO3_STEP) if client == "boto3" else CLI_CALLS
    step = 2 * duration / calls
    if client == "boto3":
        runs = [["boto3", str(calls), str(step)]]
    else:
        runs = [["aws", "sts", "get-caller-identity"] for _ in range(calls)]
    for call, argv in enumerate(runs):
        if client != "boto3":
            clock.write_text(json.dumps({**json.loads(clock.read_text()), "now": call * step}))
        done = subprocess.run([sys.executable, "-m", "bench.spawns", *argv], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{client} failed: {done.stderr[-2000:]}")
    seen = counts.read_text().split()
    return {"calls": calls, "spawns": seen.count("spawn"), "vends": seen.count("vend")}


def main(argv: list[str]) -> int:
    if argv[:1] == ["shim"]:
        return shim(argv[1:])
    if argv[:1] == ["aws"]:
        return aws(argv[1:])
    if argv[:1] == ["boto3"]:
        return boto3_calls(int(argv[1]), float(argv[2]))
    from bench.context import Context

    with Context() as context:
        stack = context.local_stack()
        print("| client | credentials | stsvend's refresh window | calls over two lifetimes |"
              " stsvend spawns | vends | per 10 calls: spawns, vends |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for client in ("aws-cli", "boto3"):
            for duration in (900, 3600):
                for window in (None, 300):
                    scratch = context.scratch(f"{client}-{duration}-{window}")
                    figures = measure(stack.state, scratch, client, duration, refresh_window=window)
                    shown = "default" if window is None else f"{window} s (before)"
                    spawns, vends, calls = figures["spawns"], figures["vends"], figures["calls"]
                    print(f"| {client} | {duration} s | {shown} | {calls} | {spawns} | {vends} |"
                          f" {10 * spawns / calls:.2f}, {10 * vends / calls:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
