"""Benchmark 3, end to end on the local stack (moto with IAM auth enforced + `chalice local`): a cache
miss of `stsvend credentials` (sign, identity proof, HTTP, proof check, grant lookup, AssumeRole)
against the floor, one GetCallerIdentity plus one AssumeRole sent straight to the same emulator with
warm boto3 clients (what the service itself must send to STS for one vend).

Jenkins asks for the cross-account deployer role with two build tags. Measured three ways:

- in-process, the request path (goal): the client's `ApiClient.call`, signer already loaded, as
  every request after the first in one process; Python start-up and one-time botocore set-up are
  outside the clock on both sides;
- in-process, per invocation: `obtain_credentials(--no-cache)`, which also creates the botocore
  session, loads the caller's credentials and resolves the STS endpoint each time, as each
  `stsvend` process does once;
- whole processes: `stsvend credentials --no-cache` vs a Python process that imports boto3 and
  makes the two calls (start-up counted on both sides).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, child_main, comparison, interleaved, run_child, run_process
from bench.events import DEPLOYER

NAME = "end_to_end"
TITLE = "End to end, cache miss on the local stack"
GOAL = 1.5
WARMUP, ROUNDS = 5, 40
PROCESS_ROUNDS = 10
TAGS = {"build-id": "1234", "job-name": "deploy"}
CLI_ARGS = ["credentials", "--role", DEPLOYER, "--duration", "900", "--no-cache",
            "--tag", "build-id=1234", "--tag", "job-name=deploy"]
# The floor as its own process: what a user would run to assume the role straight from STS.
FLOOR_SCRIPT = """
import json, os, boto3
session = boto3.session.Session()
session.client("sts").get_caller_identity()
service = session.client("sts", aws_access_key_id=os.environ["BENCH_SERVICE_KEY_ID"],
                         aws_secret_access_key=os.environ["BENCH_SERVICE_SECRET"])
service.assume_role(**json.loads(os.environ["BENCH_ASSUME_ROLE"]))
"""


def client_environment(state: Any, identity: str, scratch: Path) -> dict[str, str]:
    """The caller's environment: its emulator keys, the stack's API, a private cache directory,
    and Python's bytecode cache on (as after a pip install) in a private directory."""
    from stsvend.local.stack import hermetic_environment

    env = {**hermetic_environment(), **state.environment(identity)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["XDG_CACHE_HOME"] = str(scratch / "cache")
    return env


def floor_parameters(state: Any) -> dict[str, Any]:
    """The AssumeRole the service sends for this request (docs/design.md section 4)."""
    policy = json.loads((ROOT / "policies" / "session" / "ec2-deploy.json").read_text(encoding="utf-8"))
    caller = state.identities["jenkins"].arn
    return {
        "RoleArn": DEPLOYER,
        "RoleSessionName": "jenkins-0f0e5a8c00004000",
        "DurationSeconds": 900,
        "SourceIdentity": "jenkins",
        "Tags": [
            {"Key": "stsvend:caller", "Value": caller},
            {"Key": "stsvend:caller-account", "Value": caller.split(":")[4]},
            {"Key": "stsvend:request-id", "Value": "0f0e5a8c-0000-4000-8000-000000000000"},
            *({"Key": k, "Value": v} for k, v in TAGS.items()),
        ],
        "TransitiveTagKeys": ["stsvend:caller", "stsvend:caller-account"],
        "Policy": json.dumps(policy, separators=(",", ":")),
        "ExternalId": "stsvend-local",
    }


def run(context: Any) -> dict[str, Any]:
    state = context.local_stack().state
    scratch = context.scratch(NAME)
    service = state.identities["service"]
    env = {
        **client_environment(state, "jenkins", scratch),
        "BENCH_SERVICE_KEY_ID": service.access_key_id,
        "BENCH_SERVICE_SECRET": service.secret_access_key,
        "BENCH_ASSUME_ROLE": json.dumps(floor_parameters(state)),
    }
    _, result = run_child([PYTHON, "-m", "bench.endtoend"], env, timeout=240)

    stsvend_argv = [str(Path(PYTHON).parent / "stsvend"), *CLI_ARGS, "--format", "process"]
    floor_argv = [PYTHON, "-c", FLOOR_SCRIPT]

    def process(argv: list[str]) -> Any:
        return lambda: run_process(argv, env)

    process(stsvend_argv)()  # writes the bytecode caches
    process(floor_argv)()
    stsvend_process, floor_process = interleaved(PROCESS_ROUNDS, process(stsvend_argv), process(floor_argv))
    how = f"{ROUNDS} each after {WARMUP} warm-up, interleaved, in one process"
    floor = result["floor"]
    return {
        "title": TITLE,
        "comparisons": [
            comparison("request path in-process (ApiClient.call) vs floor", result["request_path"], floor,
                       GOAL, "stsvend client request", "GetCallerIdentity + AssumeRole, boto3", how),
            comparison("per invocation in-process (obtain_credentials --no-cache) vs floor",
                       result["per_invocation"], floor, None, "stsvend credentials --no-cache",
                       "GetCallerIdentity + AssumeRole, boto3", how),
            comparison("whole processes: stsvend credentials --no-cache vs python+boto3 floor",
                       stsvend_process, floor_process, None, "stsvend process", "python -c (boto3, 2 calls)",
                       f"{PROCESS_ROUNDS} processes each, interleaved, bytecode cached"),
        ],
        "floor_calls_p50_ms": result["floor_calls_p50_ms"],
    }


def measure() -> dict[str, Any]:
    import boto3

    from bench.common import summary
    from stsvend.cli import build_parser
    from stsvend.client.cache import is_credential_answer
    from stsvend.client.calls import ApiClient
    from stsvend.client.commands import obtain_credentials
    from stsvend.client.location import api_url, resolve_region
    from stsvend.client.request import credential_request

    env = os.environ
    args = build_parser().parse_args(CLI_ARGS)
    url = api_url(None, env)
    client = ApiClient(url, resolve_region(None, url, env), env)
    body = credential_request(args)

    def request_path() -> None:
        if not is_credential_answer(client.call("POST", "/credentials", body)):
            raise RuntimeError("the API's answer is not credentials")

    def per_invocation() -> None:
        obtain_credentials(args)

    session = boto3.session.Session()
    caller_sts = session.client("sts")
    service_sts = session.client("sts", aws_access_key_id=env["BENCH_SERVICE_KEY_ID"],
                                 aws_secret_access_key=env["BENCH_SERVICE_SECRET"])
    parameters = json.loads(env["BENCH_ASSUME_ROLE"])
    parts: dict[str, list[float]] = {"GetCallerIdentity": [], "AssumeRole": []}

    def floor() -> float:
        import time

        started = time.perf_counter()
        caller_sts.get_caller_identity()
        between = time.perf_counter()
        service_sts.assume_role(**parameters)
        ended = time.perf_counter()
        parts["GetCallerIdentity"].append(between - started)
        parts["AssumeRole"].append(ended - between)
        return ended - started

    actions = (request_path, per_invocation, floor)
    interleaved(WARMUP, *actions)
    for samples in parts.values():
        samples.clear()
    request_times, invocation_times, floor_times = interleaved(ROUNDS, *actions)
    return {
        "request_path": request_times,
        "per_invocation": invocation_times,
        "floor": floor_times,
        "floor_calls_p50_ms": {name: summary(samples)["p50_ms"] for name, samples in parts.items()},
    }


if __name__ == "__main__":
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing of a vend may be printed
    child_main(measure)
