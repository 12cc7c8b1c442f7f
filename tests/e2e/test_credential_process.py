"""`credential_process = stsvend credentials --api URL --role ARN` against the local stack, read by
boto3 through a profile, with nothing stsvend-specific in the environment: the client derives the
server id its identity proofs name from the API URL, and the stack's server answers as that URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack
from tests.e2e.conftest import run_checkout_command

pytestmark = pytest.mark.e2e

# boto3 in a process of its own, through the profile; prints who the vended credentials are and
# what the read-only role lets it see.
_SCRIPT = """
import json, boto3
session = boto3.Session(profile_name="stsvend-read-only")
arn = session.client("sts").get_caller_identity()["Arn"]
reservations = session.client("ec2").describe_instances()["Reservations"]
ids = sorted(i["InstanceId"] for r in reservations for i in r["Instances"])
print(json.dumps({"arn": arn, "instances": ids}))
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_credential_process_through_a_profile_needs_nothing_stsvend_specific(
    stack: LocalStack, tmp_path: Path, host: str
) -> None:
    state = stack.state
    api_url = state.api_url.replace("127.0.0.1", host)
    config = tmp_path / "config"
    config.write_text(
        "[profile stsvend-read-only]\n"
        f"region = {state.region}\n"
        f"credential_process = {sys.executable} -m stsvend.cli credentials --api {api_url}"
        f" --role {state.roles['read-only']}\n"
    )
    # The caller's own keys and the emulator as every AWS endpoint, as the env scripts set them,
    # minus STSVEND_API_URL: only AWS variables.
    env = {k: v for k, v in state.environment("sample-app").items() if k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), XDG_CACHE_HOME=str(tmp_path / "cache"))

    result = run_checkout_command("-c", _SCRIPT, env=env)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["arn"].startswith("arn:aws:sts::111111111111:assumed-role/read-only/sample-app-")
    assert answer["instances"] == sorted(state.instances["111111111111"])


def test_the_env_scripts_export_no_server_id(stack: LocalStack) -> None:
    for name in stack.state.identities:
        script = (stack.state_dir / "env" / f"{name}.sh").read_text()
        assert "STSVEND_SERVER_ID" not in script
        assert f"export STSVEND_API_URL={stack.state.api_url}" in script
