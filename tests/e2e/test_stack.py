"""The local stack itself: what `.stsvend/local.json` promises, and an emulator that enforces IAM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from stsvend.local.process import LOOPBACK, ensure_port_free, free_port
from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output
from tests.e2e.conftest import ROOT, Api, aws, own_keys, run_checkout_command

pytestmark = pytest.mark.e2e


def test_local_json_names_the_stack_and_its_identities(stack: LocalStack) -> None:
    data = json.loads(stack.state_path.read_text())

    assert stat.S_IMODE(stack.state_path.stat().st_mode) == 0o600
    assert data["api_url"].startswith("http://127.0.0.1:")
    assert data["emulator_url"].startswith("http://127.0.0.1:")
    assert (data["region"], data["grants_table"]) == ("us-east-1", "stsvend-grants-local")
    port = data["api_url"].rsplit(":", 1)[1]
    assert data["server_ids"] == [data["api_url"], f"http://localhost:{port}"]
    assert set(data["identities"]) == {"admin", "service", "sample-app", "jenkins"}
    for identity in data["identities"].values():
        assert set(identity) == {"arn", "account_id", "access_key_id", "secret_access_key"}
        assert identity["account_id"] == "111111111111"
    assert data["identities"]["service"]["arn"] == "arn:aws:iam::111111111111:user/stsvend-service"


def test_the_emulator_checks_signatures_and_identity_policies(state: LocalState) -> None:
    forged = {**own_keys(state, "sample-app"), "SecretAccessKey": "not-the-secret"}
    with pytest.raises(ClientError) as bad_secret:
        aws(state, "sts", forged).get_caller_identity()
    assert bad_secret.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    with pytest.raises(ClientError) as not_allowed:
        aws(state, "ec2", own_keys(state, "sample-app")).describe_instances()
    assert not_allowed.value.response["Error"]["Code"] == "AccessDenied"


def test_the_service_may_not_read_ec2_and_only_the_service_is_trusted_by_read_only(state: LocalState) -> None:
    service = own_keys(state, "service")
    with pytest.raises(ClientError) as denied:
        aws(state, "ec2", service).describe_instances()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as untrusted:
        aws(state, "sts", own_keys(state, "admin")).assume_role(
            RoleArn=state.roles["read-only"], RoleSessionName="not-the-service"
        )
    assert untrusted.value.response["Error"]["Code"] == "AccessDenied"


def other_ports() -> dict[str, str]:
    """The stack's other servers on free ports too: a user's own stack may hold the defaults."""
    return {"STSVEND_GATEWAY_PORT": str(free_port()), "STSVEND_OIDC_PORT": str(free_port())}


@pytest.mark.parametrize("busy", ["emulator", "api"])
def test_a_port_in_use_is_reported_and_the_running_stack_is_left_alone(
    stack: LocalStack, busy: str, tmp_path
) -> None:
    emulator_port = stack.emulator.port if busy == "emulator" else free_port()
    api_port = stack.api_port if busy == "api" else free_port()
    variable = {"emulator": "STSVEND_EMULATOR_PORT", "api": "STSVEND_API_PORT"}[busy]

    result = run_checkout_command(
        "-m", "stsvend.cli", "local", "up",
        env={"STSVEND_EMULATOR_PORT": str(emulator_port), "STSVEND_API_PORT": str(api_port),
             **other_ports(), "STSVEND_LOCAL_DIR": str(tmp_path)},
    )

    assert result.returncode == 1
    busy_port = emulator_port if busy == "emulator" else api_port
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert f"{variable}=PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.stopped_server() is None
    assert stack.state_path.exists()


def test_a_second_local_up_in_a_running_stacks_state_dir_is_refused_and_leaves_it_alone(
    stack: LocalStack,
) -> None:
    state_text = stack.state_path.read_text(encoding="utf-8")
    env_scripts = sorted((stack.state_dir / "env").iterdir())

    env = {**hermetic_environment(), "STSVEND_LOCAL_DIR": str(stack.state_dir),
           "STSVEND_EMULATOR_PORT": str(free_port()), "STSVEND_API_PORT": str(free_port()), **other_ports()}
    second = subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "local", "up"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        out, errors = second.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Before the fix it started and served: SIGTERM stops it and the servers it started.
        second.terminate()
        out, errors = second.communicate(timeout=30)
    record_output(out + errors)

    assert second.returncode == 1
    assert "stsvend: LocalStackError: another local stack is running" in errors
    assert stack.api_url in errors and "STSVEND_LOCAL_DIR=DIR" in errors
    assert "Traceback" not in errors
    assert stack.stopped_server() is None
    assert stack.state_path.read_text(encoding="utf-8") == state_text
    assert sorted((stack.state_dir / "env").iterdir()) == env_scripts


def test_local_up_serves_until_interrupted_then_stops_and_cleans_up(tmp_path) -> None:
    ports = {"STSVEND_EMULATOR_PORT": free_port(), "STSVEND_API_PORT": free_port()}
    env = {**hermetic_environment(), "STSVEND_LOCAL_DIR": str(tmp_path),
           **{k: str(v) for k, v in ports.items()}, **other_ports()}
    up = subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "local", "up"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        shown = []
        for line in up.stdout:  # the stack bounds its own start; on failure it exits
            shown.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        ready = "".join(shown)
        state = LocalState.load(tmp_path / "local.json")
        assert "stsvend local: ready." in ready
        assert state.api_url in ready and state.emulator_url in ready
        # botocore reads only AWS_DEFAULT_REGION from the environment; the other SDKs AWS_REGION.
        assert (f"export AWS_ENDPOINT_URL={state.emulator_url} AWS_REGION={state.region}"
                f" AWS_DEFAULT_REGION={state.region}\n") in ready
        # The AWS CLI the dev extras install, by --profile: AWS_PROFILE would lose to the sourced keys.
        aws_cli = Path(sys.executable).parent / "aws"
        assert aws_cli.exists()
        shown = aws_cli.relative_to(ROOT) if aws_cli.is_relative_to(ROOT) else aws_cli
        assert f"{shown} ec2 describe-instances --profile stsvend-read-only\n" in ready
        for identity in state.identities.values():
            assert identity.secret_access_key not in ready
        assert stat.S_IMODE((tmp_path / "env" / "sample-app.sh").stat().st_mode) == 0o600
        assert Api(state).call("GET", "/whoami", "jenkins").body["Arn"] == (
            "arn:aws:iam::111111111111:user/jenkins"
        )

        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.terminate()  # stops the servers too
            up.wait(timeout=30)
        rest, errors = up.communicate()
        record_output(rest + errors)
    assert "stsvend local: stopping" in rest
    assert not (tmp_path / "local.json").exists()
    assert not list((tmp_path / "env").iterdir())
    for variable, port in ports.items():
        ensure_port_free(LOOPBACK, port, "server", variable)
