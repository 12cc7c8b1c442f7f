"""Build agents and internal tools against the local stack, with the clients they really run: a
boto3, an AWS CLI v1 and a JavaScript SDK v3 child of `stsvend exec` keep working past their first
credentials and see more than one access key; `stsvend.session()` does the same in-process.

Credentials last 900 s (the service's minimum); a refresh window of 898 s makes them due for renewal
two seconds after each vend, so renewals happen within the test, not an hour later. The agent's own
shared credentials file holds *another* identity's valid keys as `[default]`, which every SDK reads
before the container endpoint: the children must still act as the vended role.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import stsvend
from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output, record_vended
from tests.e2e.conftest import ROOT
from tests.e2e.test_vending import DEPLOYER, tags_of

pytestmark = pytest.mark.e2e

ROUNDS = "3"
PAUSE_SECONDS = "1"
RENEWING = ["--duration", "900", "--refresh-window", "898"]
TAGS = {"build-id": "e2e-agents", "job-name": "long-deploy"}


def agent_environment(state: LocalState, tmp_path: Path) -> dict[str, str]:
    """Jenkins' agent: its keys in the environment, sample-app's keys as the shared files'
    [default] (valid in the emulator, so a child that read them would act as sample-app)."""
    other = state.identities["sample-app"]
    credentials = tmp_path / "agent-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {other.access_key_id}\n"
                           f"aws_secret_access_key = {other.secret_access_key}\n")
    config = tmp_path / "agent-config"
    config.write_text(f"[default]\nregion = {state.region}\n")
    return {
        **hermetic_environment(),
        **state.environment("jenkins"),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(config),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def stsvend_exec(
    state: LocalState, tmp_path: Path, session_name: str, *command: str, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    tags = [f"--tag={key}={value}" for key, value in TAGS.items()]
    done = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", "exec", "--role", DEPLOYER, *tags,
         "--session-name", session_name, *RENEWING, "--", *command],
        cwd=cwd, env=agent_environment(state, tmp_path), capture_output=True, text=True, timeout=120,
    )
    record_output(done.stdout)
    record_output(done.stderr)
    return done


def assert_renewed_with_the_same_request(stack: LocalStack, session_name: str) -> None:
    calls = [c for c in stack.emulator.recorded_calls("AssumeRole")
             if c.get("RoleSessionName") == f"jenkins-{session_name}"]
    assert len(calls) >= 2, "the server vended again"
    for call in calls:
        assert call["RoleArn"] == DEPLOYER
        assert call["DurationSeconds"] == "900"
        assert {k: v for k, v in tags_of(call).items() if k in TAGS} == TAGS


def role_arn(session_name: str) -> str:
    return f"arn:aws:sts::222222222222:assumed-role/deployer/jenkins-{session_name}"


BOTO3_CHILD = """
import json, os, sys, time, urllib.error, urllib.request
import boto3
rounds, pause, report = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
try:
    urllib.request.urlopen(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], timeout=10)
    without_token = 200
except urllib.error.HTTPError as error:
    without_token = error.code
session = boto3.Session()
sts = session.client("sts")
seen, secrets = [], []
for _ in range(rounds):
    arn = sts.get_caller_identity()["Arn"]
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials()
    seen.append({"access_key": frozen.access_key, "arn": arn, "method": credentials.method})
    secrets.append({"SecretAccessKey": frozen.secret_key, "SessionToken": frozen.token})
    time.sleep(pause)
with open(report, "w") as handle:
    json.dump({"secrets": secrets, "env": dict(os.environ)}, handle)
print(json.dumps({"seen": seen, "without_token": without_token}))
"""


def test_a_boto3_child_outlives_its_first_credentials(stack: LocalStack, tmp_path: Path) -> None:
    name = f"boto3-{uuid.uuid4().hex[:8]}"
    report = tmp_path / "report.json"
    done = stsvend_exec(stack.state, tmp_path, name,
                        sys.executable, "-c", BOTO3_CHILD, ROUNDS, PAUSE_SECONDS, str(report))
    private = json.loads(report.read_text())
    for secrets in private["secrets"]:
        record_vended(secrets)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["without_token"] == 401
    assert {s["arn"] for s in result["seen"]} == {role_arn(name)}
    assert {s["method"] for s in result["seen"]} == {"container-role"}
    assert len({s["access_key"] for s in result["seen"]}) > 1
    child_env = json.dumps(private["env"])
    for secrets in private["secrets"]:
        assert secrets["SecretAccessKey"] not in child_env
        assert secrets["SessionToken"] not in child_env
    assert stack.state.identities["jenkins"].secret_access_key not in child_env
    assert_renewed_with_the_same_request(stack, name)


def test_an_aws_cli_child_outlives_its_first_credentials(stack: LocalStack, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    aws = Path(sys.executable).parent / "aws"
    script = (
        f'for round in $(seq {ROUNDS}); do '
        f'"{aws}" configure list | grep "^access_key"; '
        f'"{aws}" sts get-caller-identity --query Arn --output text || exit 9; '
        f'sleep {PAUSE_SECONDS}; done'
    )
    done = stsvend_exec(stack.state, tmp_path, name, "sh", "-c", script)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    keys = [line.split() for line in lines if line.startswith("access_key")]
    arns = [line for line in lines if line.startswith("arn:")]
    assert len(keys) == len(arns) == int(ROUNDS)
    assert {key[2] for key in keys} == {"container-role"}
    assert len({key[1] for key in keys}) > 1  # the CLI shows the key's last four characters
    assert set(arns) == {role_arn(name)}
    assert_renewed_with_the_same_request(stack, name)


def test_a_javascript_sdk_v3_child_outlives_its_first_credentials(
    stack: LocalStack, tmp_path: Path, js_clients: Path
) -> None:
    name = f"js-{uuid.uuid4().hex[:8]}"
    done = stsvend_exec(stack.state, tmp_path, name, "node", str(js_clients / "sts_child.mjs"),
                        ROUNDS, str(int(PAUSE_SECONDS) * 1000), cwd=js_clients)

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen) == int(ROUNDS)
    assert {s["arn"] for s in seen} == {s["longLivedArn"] for s in seen} == {role_arn(name)}
    assert len({s["accessKeyId"] for s in seen}) > 1
    assert_renewed_with_the_same_request(stack, name)


# -- the library -------------------------------------------------------------------------------


@pytest.fixture
def as_jenkins(stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalState:
    """This process as Jenkins' agent, for in-process use of the library."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "STSVEND_")):
            monkeypatch.delenv(name)
    for name, value in agent_environment(stack.state, tmp_path).items():
        if name.startswith(("AWS_", "STSVEND_", "XDG_")):
            monkeypatch.setenv(name, value)
    return stack.state


def test_library_session_calls_aws_as_the_role_and_renews(
    stack: LocalStack, as_jenkins: LocalState
) -> None:
    name = f"library-{uuid.uuid4().hex[:8]}"
    session = stsvend.session(role_arn=DEPLOYER, tags=TAGS, session_name=name,
                              duration_seconds=900, refresh_window=898)
    sts = session.client("sts")
    ec2 = session.client("ec2")
    keys: list[str] = []
    for _ in range(int(ROUNDS)):
        assert sts.get_caller_identity()["Arn"] == role_arn(name)
        frozen = session.get_credentials().get_frozen_credentials()
        record_vended({"SecretAccessKey": frozen.secret_key, "SessionToken": frozen.token})
        keys.append(frozen.access_key)
        time.sleep(float(PAUSE_SECONDS))
    listed = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]

    assert len(set(keys)) > 1
    assert set(as_jenkins.instances["222222222222"]) <= set(listed)
    assert_renewed_with_the_same_request(stack, name)


def test_library_vend_returns_typed_credentials_without_secrets_in_repr(
    as_jenkins: LocalState,
) -> None:
    vended = stsvend.vend(DEPLOYER, tags={"build-id": "lib-1"}, session_name="lib-1")
    record_vended({"SecretAccessKey": vended.secret_access_key, "SessionToken": vended.session_token})

    assert vended.access_key_id.startswith("ASIA")
    assert vended.assumed_role_arn == role_arn("lib-1")
    assert vended.source_identity == "jenkins"
    assert vended.expiration.tzinfo is not None
    text = repr(vended)
    assert vended.access_key_id in text
    assert vended.secret_access_key not in text and vended.session_token not in text


def test_library_raises_the_services_refusal(as_jenkins: LocalState) -> None:
    with pytest.raises(stsvend.CommandError) as refused:
        stsvend.session(role_arn=as_jenkins.roles["read-only"])
    assert refused.value.code == "RoleNotGranted"
    assert refused.value.exit_status == 3



def test_library_refuses_a_server_id_naming_another_host(as_jenkins: LocalState) -> None:
    with pytest.raises(stsvend.CommandError) as refused:
        stsvend.vend(DEPLOYER, server_id="http://127.0.0.2:8000")
    assert refused.value.exit_status == 2


def test_library_signs_with_the_source_profile_it_is_given(
    as_jenkins: LocalState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys in the environment, the agent's keys in a profile: the library signs with the profile
    it is told to use, as the command's --source-profile, and refuses without one."""
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    credentials = tmp_path / "library-credentials"
    credentials.write_text(f"[agent]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))

    vended = stsvend.vend(DEPLOYER, session_name="lib-source", source_profile="agent")
    record_vended({"SecretAccessKey": vended.secret_access_key, "SessionToken": vended.session_token})
    assert vended.source_identity == "jenkins"
    assert vended.assumed_role_arn == role_arn("lib-source")

    session = stsvend.session(role_arn=DEPLOYER, session_name="lib-source-2", source_profile="agent")
    frozen = session.get_credentials().get_frozen_credentials()
    record_vended({"SecretAccessKey": frozen.secret_key, "SessionToken": frozen.token})
    assert session.client("sts").get_caller_identity()["Arn"] == role_arn("lib-source-2")

    with pytest.raises(stsvend.CommandError) as refused:
        stsvend.vend(DEPLOYER, source_profile="no-such-profile")
    assert refused.value.exit_status == 3
