"""The environment of `stsvend exec`'s child leads every SDK to the endpoint and nowhere else,
beyond what botocore shows (tests/functional/test_credserver.py) and the real SDKs show against the
local stack (tests/e2e/test_exec_children_act_as_the_role.py): the JavaScript SDK v2 gets
AWS_SDK_LOAD_CONFIG (so it reads the run's empty shared files, not `$HOME/.aws/credentials`), and
a Java system property naming credentials, which the Java SDKs read ahead of the environment, is
refused rather than handed to a JVM the job starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.functional.test_client import ROLE, FakeApi, base_env, run_cli

SECRET_IN_OPTIONS = "java-options-secret-never-printed"
CHILD = "import json, os; print(json.dumps(dict(os.environ)))"


def test_the_child_has_the_javascript_sdk_v2_read_the_runs_shared_files(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = {**base_env(tmp_path), "AWS_SDK_LOAD_CONFIG": ""}
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--", sys.executable, "-c", CHILD,
                   env=environment)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout)
    assert child["AWS_SDK_LOAD_CONFIG"] == "1"
    assert Path(child["AWS_SHARED_CREDENTIALS_FILE"]).parent == Path(child["AWS_CONFIG_FILE"]).parent


@pytest.mark.parametrize("variable", ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"])
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (f"-Xmx1g -Daws.accessKeyId=AKIAJAVAOPTIONS00001 -Daws.secretAccessKey={SECRET_IN_OPTIONS}",
         "aws.accessKeyId"),
        ("-Daws.profile=agent", "aws.profile"),
        ("-Dfoo=1  -Daws.sharedCredentialsFile=/home/agent/.aws/credentials", "aws.sharedCredentialsFile"),
        ("-Daws.containerCredentialsFullUri=http://127.0.0.1:9/x", "aws.containerCredentialsFullUri"),
        ("-Daws.webIdentityTokenFile=/var/token", "aws.webIdentityTokenFile"),
    ],
)
@pytest.mark.parametrize("mode", [[], ["--env"]])
def test_a_java_credential_property_in_the_jvm_options_is_refused(
    api: FakeApi, tmp_path: Path, variable: str, options: str, named: str, mode: list[str]
) -> None:
    marker = tmp_path / "ran"
    environment = {**base_env(tmp_path), variable: options}
    done = run_cli("exec", *mode, "--api", api.url, "--role", ROLE, "--", "touch", str(marker),
                   env=environment)

    assert done.returncode == 2
    assert done.stderr.startswith(
        f"stsvend: CredentialsElsewhere: {variable} sets the Java system property {named}"
    )
    assert SECRET_IN_OPTIONS not in done.stderr
    assert not marker.exists()
    assert api.received == []


def test_other_java_properties_are_left_alone(api: FakeApi, tmp_path: Path) -> None:
    environment = {**base_env(tmp_path), "JAVA_TOOL_OPTIONS": "-Daws.region=eu-west-1 -Daws.maxAttempts=5"}
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--", sys.executable, "-c", CHILD,
                   env=environment)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["JAVA_TOOL_OPTIONS"] == environment["JAVA_TOOL_OPTIONS"]
