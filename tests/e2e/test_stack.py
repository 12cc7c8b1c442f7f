"""The local stack itself: what `.stsvend/local.json` promises, and an emulator that enforces IAM."""

from __future__ import annotations

import json
import stat

import pytest
from botocore.exceptions import ClientError

from stsvend.local.process import free_port
from stsvend.local.stack import LocalStack, LocalState
from tests.e2e.conftest import aws, own_keys, run_checkout_command

pytestmark = pytest.mark.e2e


def test_local_json_names_the_stack_and_its_identities(stack: LocalStack) -> None:
    data = json.loads(stack.state_path.read_text())

    assert stat.S_IMODE(stack.state_path.stat().st_mode) == 0o600
    assert data["api_url"].startswith("http://127.0.0.1:")
    assert data["emulator_url"].startswith("http://127.0.0.1:")
    assert (data["region"], data["server_id"], data["grants_table"]) == (
        "us-east-1", "stsvend-local", "stsvend-grants-local"
    )
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


def test_the_service_identity_may_assume_roles_but_not_read_ec2(state: LocalState) -> None:
    service = own_keys(state, "service")
    with pytest.raises(ClientError) as denied:
        aws(state, "ec2", service).describe_instances()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as untrusted:
        aws(state, "sts", own_keys(state, "admin")).assume_role(
            RoleArn=state.roles["read-only"], RoleSessionName="not-the-service"
        )
    assert untrusted.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize("busy", ["emulator", "api"])
def test_a_port_in_use_is_reported_and_the_running_stack_is_left_alone(
    stack: LocalStack, busy: str
) -> None:
    emulator_port = stack.emulator.port if busy == "emulator" else free_port()
    api_port = stack.api_port if busy == "api" else free_port()
    variable = {"emulator": "STSVEND_EMULATOR_PORT", "api": "STSVEND_API_PORT"}[busy]

    result = run_checkout_command(
        "-m", "stsvend.cli", "local", "up",
        env={"STSVEND_EMULATOR_PORT": str(emulator_port), "STSVEND_API_PORT": str(api_port)},
    )

    assert result.returncode == 1
    busy_port = emulator_port if busy == "emulator" else api_port
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert f"{variable}=PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.stopped_server() is None
    assert stack.state_path.exists()
