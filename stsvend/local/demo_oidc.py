"""`make demo`'s CI step: a GitHub-Actions-shaped job with no AWS credentials gets `read-only` for
its OIDC token and describes the EC2 instances; a pull-request run of the same repository is denied.

The token comes from `stsvend local token` (the local GitHub-shaped issuer); the job then runs
`stsvend credentials --oidc-token-file` with no AWS credentials in its environment at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from stsvend.checkout.local_state import STATE_DIR_VARIABLE
from stsvend.local.seed import aws_client
from stsvend.local.stack import LocalStack, hermetic_environment

STEP_TIMEOUT_SECONDS = 120
ISSUER = "github-local"
PULL_REQUEST = {"event_name": "pull_request", "ref": "refs/pull/7/merge"}


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command, no shell
        [sys.executable, "-m", "stsvend.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )


def _job_env(stack: LocalStack) -> dict[str, str]:
    """A CI job's environment: the API's URL, and no AWS credentials, profile or endpoint."""
    return {**hermetic_environment(), "STSVEND_API_URL": stack.state.api_url}


def _token(root: Path, stack: LocalStack, claims: dict[str, Any]) -> str:
    env = {**hermetic_environment(), STATE_DIR_VARIABLE: str(stack.state_dir)}
    argv = ["local", "token", "--root", str(root), "--issuer", ISSUER, "--claims", json.dumps(claims)]
    result = _run(argv, env)
    if result.returncode != 0:
        raise RuntimeError(f"stsvend local token failed: {result.stderr.strip()}")
    return result.stdout.strip()


def github_job(root: Path, stack: LocalStack) -> tuple[bool, str]:
    state = stack.state
    role = state.roles["read-only"]
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        token_file = Path(scratch) / "token"
        token_file.write_text(_token(root, stack, {}), encoding="utf-8")
        os.chmod(token_file, 0o600)
        argv = ["credentials", "--role", role, "--oidc-token-file", str(token_file), "--format", "json"]
        lines.append(f"$ stsvend credentials --role {role} --oidc-token-file $TOKEN   # no AWS credentials")
        result = _run(argv, _job_env(stack))
        if result.returncode != 0:
            return False, "\n".join([*lines, result.stderr.strip(), "the job got no credentials"]) + "\n"
        answer = json.loads(result.stdout)
        lines.append(f"vended {answer['AssumedRoleArn']}, source identity {answer['SourceIdentity']}")
        ec2 = aws_client(
            "ec2",
            state.emulator_url,
            answer["AccessKeyId"],
            answer["SecretAccessKey"],
            answer["SessionToken"],
        )
        reservations = ec2.describe_instances()["Reservations"]
        count = sum(len(r["Instances"]) for r in reservations)
        lines.append(f"describe-instances with them: {count} instances")

        token_file.write_text(_token(root, stack, PULL_REQUEST), encoding="utf-8")
        lines.append("$ the same, from a pull_request run of the same repository")
        denied = _run(argv, _job_env(stack))
        refused = denied.returncode != 0 and "CallerNotAllowed" in denied.stderr and not denied.stdout
        lines.append(denied.stderr.strip())
        lines.append("refused, as expected: the grant admits main only" if refused else "NOT refused")
    return refused and count > 0, "\n".join(lines) + "\n"
