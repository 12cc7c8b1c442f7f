"""What the examples share: the local stack's `local.json`, and `stsvend credentials` run as one of
its identities, exactly as a build job or an application would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / ".stsvend" / "local.json"
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


class StepFailed(Exception):
    """A step did not behave as the example says it should."""


def load_config(option: str | None) -> dict[str, Any]:
    """`--config`, else $STSVEND_LOCAL_CONFIG, else the checkout's `.stsvend/local.json`."""
    path = Path(option or os.environ.get("STSVEND_LOCAL_CONFIG") or DEFAULT_CONFIG)
    try:
        config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise StepFailed(f"{path} not found: start the local stack first (make run)") from None
    return config


def caller_environment(config: dict[str, Any], identity: str) -> dict[str, str]:
    """The environment in which `identity` calls stsvend: its emulator keys, the emulator as every
    AWS endpoint, and the API's URL (the client derives the server id its proofs name from it)."""
    me = config["identities"][identity]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env.update(
        AWS_ACCESS_KEY_ID=me["access_key_id"],
        AWS_SECRET_ACCESS_KEY=me["secret_access_key"],
        AWS_REGION=config["region"],
        AWS_ENDPOINT_URL=config["emulator_url"],
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        STSVEND_API_URL=config["api_url"],
    )
    return env


def run_stsvend(config: dict[str, Any], identity: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command, no shell
        [sys.executable, "-m", "stsvend.cli", *args],
        env=caller_environment(config, identity),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stsvend_credentials(
    config: dict[str, Any], identity: str, role_arn: str, *options: str
) -> dict[str, Any]:
    """`stsvend credentials --format json` as `identity`; StepFailed with the service's error.

    --no-cache: each run shows the service deciding (the cache would answer a second run).
    """
    result = run_stsvend(
        config, identity, "credentials", "--role", role_arn, "--format", "json", "--no-cache",
        *options,
    )
    if result.returncode != 0:
        # The client prints only the service's Code and Message on stderr, never a secret.
        raise StepFailed(f"stsvend refused: {result.stderr.strip()}")
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def own_keys(config: dict[str, Any], identity: str) -> dict[str, str]:
    me = config["identities"][identity]
    return {"AccessKeyId": me["access_key_id"], "SecretAccessKey": me["secret_access_key"]}


def aws(service: str, config: dict[str, Any], keys: dict[str, Any]) -> Any:
    """A boto3 client for the emulator with `keys` (an identity's own, or vended ones)."""
    return boto3.client(
        service,
        region_name=config["region"],
        endpoint_url=config["emulator_url"],
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys.get("SessionToken"),
    )


def instance_ids(ec2: Any, **filters: str) -> list[str]:
    kwargs = {"Filters": [{"Name": k, "Values": [v]} for k, v in filters.items()]} if filters else {}
    reservations = ec2.describe_instances(**kwargs)["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]
