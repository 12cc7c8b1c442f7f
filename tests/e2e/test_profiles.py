"""Profiles selected as tools select them (issue 12 sections 2, 3 and 5), against the local stack with
real clients: the AWS CLI v1, boto3, the JavaScript SDKs v3 and v2 (v2 with AWS_SDK_LOAD_CONFIG=1,
as `configure` says) and awscrt's default chain pick `AWS_PROFILE=<a profile whose
credential_process is stsvend>`, with nothing stsvend-specific exported. stsvend's own identity
comes from `--source-profile`, or, without it, from the chain without that profile (here a
container-credentials endpoint on loopback, as on ECS or CodeBuild)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output
from tests.e2e.conftest import ROOT
from tests.e2e.test_exec_children_act_as_the_role import AWSCRT_CHILD

pytestmark = pytest.mark.e2e

STSVEND = [sys.executable, "-m", "stsvend.cli"]
PROFILE = "stsvend-read-only"
CLIENTS = ["aws-cli", "boto3", "js-sdk-v3", "js-sdk-v2", "awscrt"]
JS = ("js-sdk-v3", "js-sdk-v2")


class ContainerCredentials:
    """The container-credentials endpoint ECS and CodeBuild give a build: the caller's own keys."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests += 1
                body = json.dumps(keys).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/credentials/build"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def container(state: LocalState) -> Iterator[ContainerCredentials]:
    me = state.identities["sample-app"]
    # Long-term keys: an empty Token, and an expiry the SDKs will not refresh within the test.
    endpoint = ContainerCredentials({
        "AccessKeyId": me.access_key_id, "SecretAccessKey": me.secret_access_key, "Token": "",
        "Expiration": "2099-01-01T00:00:00Z",
    })
    try:
        yield endpoint
    finally:
        endpoint.stop()


def write_profiles(tmp_path: Path, state: LocalState, source: str) -> dict[str, str]:
    """The AWS files and the client environment: AWS_PROFILE selects the stsvend profile, and no
    variable names stsvend (its server id comes from the API URL in the line)."""
    me = state.identities["sample-app"]
    extra = ["--source-profile", "base"] if source == "source-profile" else []
    line = shlex.join([*STSVEND, "credentials", "--api", state.api_url,
                       "--role", state.roles["read-only"], *extra])
    config = tmp_path / "config"
    config.write_text(f"[profile {PROFILE}]\nregion = {state.region}\ncredential_process = {line}\n")
    credentials = tmp_path / "credentials"
    section = "default" if source == "default" else "base"
    credentials.write_text(f"[{section}]\naws_access_key_id = {me.access_key_id}\n"
                           f"aws_secret_access_key = {me.secret_access_key}\n")
    credentials.chmod(0o600)
    env = {
        **hermetic_environment(),
        "AWS_PROFILE": PROFILE,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_ENDPOINT_URL": state.emulator_url,
        "AWS_REGION": state.region,
        "AWS_DEFAULT_REGION": state.region,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return env


def run_client(client: str, env: dict[str, str], js_dir: Path | None) -> subprocess.CompletedProcess[str]:
    if client == "aws-cli":
        argv = [sys.executable, "-m", "awscli", "sts", "get-caller-identity", "--output", "json"]
    elif client == "boto3":
        argv = [sys.executable, "-c", "import boto3, json; "
                "print(json.dumps(boto3.client('sts').get_caller_identity()))"]
    elif client == "awscrt":
        argv = [sys.executable, "-c", AWSCRT_CHILD]
    elif client == "js-sdk-v2":
        assert js_dir is not None
        # The JavaScript SDK v2 reads ~/.aws/config only with AWS_SDK_LOAD_CONFIG=1, which is
        # what `configure` tells its users; the test gives it exactly that.
        env = {**env, "AWS_SDK_LOAD_CONFIG": "1"}
        argv = ["node", str(js_dir / "caller_identity_v2.js")]
    else:
        assert js_dir is not None
        argv = ["node", str(js_dir / "profile_child.mjs")]
    done = subprocess.run(argv, cwd=js_dir or ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    record_output(done.stdout)
    record_output(done.stderr)
    return done


def arn_of(client: str, output: str) -> str:
    answer = json.loads(output)
    return str(answer["Arn"] if client in ("aws-cli", "boto3") else answer["arn"])


# Not JS v2 with container credentials: v2's own default chain asks the container endpoint before
# credential_process (AWS.CredentialProviderChain.defaultProviders), so the line never runs there.
@pytest.mark.parametrize(("client", "source"), [
    (client, source) for source in ("source-profile", "container", "default") for client in CLIENTS
    if (client, source) != ("js-sdk-v2", "container")
])
def test_aws_profile_selecting_the_stsvend_profile_works(
    stack: LocalStack, container: ContainerCredentials, tmp_path: Path,
    request: pytest.FixtureRequest, client: str, source: str,
) -> None:
    state = stack.state
    env = write_profiles(tmp_path, state, source)
    if source == "container":
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = container.url
    js_dir = request.getfixturevalue("js_clients") if client in JS else None
    asked = container.requests

    done = run_client(client, env, js_dir)

    assert done.returncode == 0, done.stderr
    assert arn_of(client, done.stdout).startswith(
        "arn:aws:sts::111111111111:assumed-role/read-only/sample-app-"
    )
    # The container endpoint is stsvend's source exactly when no source profile is named.
    assert (container.requests > asked) is (source == "container")


@pytest.mark.parametrize("client", CLIENTS)
def test_without_a_source_the_client_shows_what_to_do(
    stack: LocalStack, tmp_path: Path, request: pytest.FixtureRequest, client: str
) -> None:
    env = write_profiles(tmp_path, stack.state, "none")
    js_dir = request.getfixturevalue("js_clients") if client in JS else None
    done = run_client(client, env, js_dir)
    assert done.returncode != 0
    if client in ("aws-cli", "boto3"):
        assert "whose credential_process runs stsvend" in done.stderr
        assert "--source-profile NAME" in done.stderr
    else:  # JS v3 reports only the exit status, v2 and awscrt an error code
        assert "whose credential_process runs stsvend" not in done.stdout + done.stderr
    # Whatever the client showed, doctor shows why (issue 20 section 6).
    doctor = subprocess.run([*STSVEND, "doctor"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    record_output(doctor.stdout)
    assert doctor.returncode == 3
    assert "no AWS credentials found outside profile 'stsvend-read-only', whose" in doctor.stdout
    assert "a run of the line exited 3" in doctor.stdout
    assert "last failure recorded" in doctor.stdout


def test_configure_writes_one_profile_per_granted_role_that_real_clients_use(
    stack: LocalStack, tmp_path: Path
) -> None:
    state = stack.state
    jenkins = state.identities["jenkins"]
    config = tmp_path / "config"
    others = ("# the team's own settings\n[default]\nregion = eu-west-1\n\n"
              "[profile hand-written]   ; odd spacing kept\nrole_arn = arn:aws:iam::1:role/x\n")
    config.write_text(others)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[base]\naws_access_key_id = {jenkins.access_key_id}\n"
                           f"aws_secret_access_key = {jenkins.secret_access_key}\n")
    env = {**hermetic_environment(), **state.environment("jenkins"),
           "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    configure = [*STSVEND, "configure", "--api", state.api_url, "--source-profile", "base",
                 "--command", shlex.join(STSVEND)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*configure, *extra], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        record_output(done.stdout)
        record_output(done.stderr)
        return done

    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert config.read_text() == others  # nothing written
    added = [line[1:] for line in dry.stdout.splitlines() if line.startswith("+[profile ")]
    assert added == ["[profile stsvend-deployer]"]
    assert not [line for line in dry.stdout.splitlines() if line.startswith("-") and
                not line.startswith("---")]

    first = run()
    assert first.returncode == 0, first.stderr
    written = config.read_text()
    assert written.startswith(others)
    assert f"--role {state.roles['deployer']} --duration 3600 --source-profile base\n" in written
    assert run().stdout.startswith("unchanged: 1 profile(s)")
    assert config.read_text() == written
    assert run("--dry-run").stdout == ""

    # boto3 through the written profile, selected as tools select it.
    use = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    use["AWS_PROFILE"] = "stsvend-deployer"
    done = run_client("boto3", use, None)
    assert done.returncode == 0, done.stderr
    assert arn_of("boto3", done.stdout).startswith("arn:aws:sts::222222222222:assumed-role/deployer/")


def test_configure_keeps_other_sections_byte_for_byte_and_refuses_foreign_ones(tmp_path: Path) -> None:
    from stsvend.client.configure import MARKER, profiles_for, updated_config
    from stsvend.errors import CommandError

    arn = "arn:aws:iam::222222222222:role/deploy/deployer"
    profiles = profiles_for({"Roles": [{"RoleArn": arn}]}, "http://127.0.0.1:8000", "eu-west-1",
                            "stsvend-", ["stsvend"])
    text = "[default]\r\nregion=x\n[profile stsvend-deployer]\n" + MARKER + "\nold = 1\n\n\n[s]\na=b"
    updated = updated_config(text, profiles)
    assert updated.startswith("[default]\r\nregion=x\n[profile stsvend-deployer]\n")
    assert updated.endswith("\n\n\n[s]\na=b") and "old = 1" not in updated
    assert f"--role {arn}\n" in updated  # no MaxDurationSeconds: the server's default
    assert "--duration 3600\n" in updated_config(text, profiles_for(
        {"Roles": [{"RoleArn": arn, "MaxDurationSeconds": 3600}]}, "http://127.0.0.1:8000",
        "eu-west-1", "stsvend-", ["stsvend"]))
    assert updated_config(updated, profiles) == updated
    with pytest.raises(CommandError, match="was not written by stsvend configure"):
        updated_config("[profile stsvend-deployer]\nregion = x\n", profiles)


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:iam::222222222222:role/x]\n[profile evil]\ncredential_process = sh",
     "arn:aws:iam::222222222222:role/x y", "arn:aws:iam::22222222222２:role/x",
     "arn:aws:iam::222222222222:user/x", 7],
    ids=["newline-bracket", "space", "fullwidth-digit", "not-a-role", "not-a-string"],
)
def test_configure_refuses_a_role_arn_that_could_inject_config(arn: Any) -> None:
    from stsvend.client.configure import profiles_for
    from stsvend.errors import CommandError

    with pytest.raises(CommandError, match="not a valid IAM role ARN; nothing was written"):
        profiles_for({"Roles": [{"RoleArn": "arn:aws:iam::222222222222:role/ok"}, {"RoleArn": arn}]},
                     "http://127.0.0.1:8000", "eu-west-1", "stsvend-", ["stsvend"])


@pytest.mark.parametrize("installed_as", ["console-script", "one-file"])
def test_configure_then_the_aws_cli_from_a_shell_whose_path_lacks_stsvend(
    stack: LocalStack, tmp_path: Path, installed_as: str, js_clients: Path
) -> None:
    """Issue 20 sections 2 and 3: keys in `[default]` of the credentials file (a Jenkins agent),
    stsvend run from the venv's bin (not on PATH); `configure` writes lines that run that very
    stsvend and sign with `[default]`; the AWS CLI then uses a profile under AWS_PROFILE from a
    shell whose PATH has no stsvend."""
    state = stack.state
    jenkins = state.identities["jenkins"]
    config = tmp_path / "config"
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {jenkins.access_key_id}\n"
                           f"aws_secret_access_key = {jenkins.secret_access_key}\n")
    env = {**hermetic_environment(), "AWS_CONFIG_FILE": str(config),
           "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_ENDPOINT_URL": state.emulator_url,
           "AWS_REGION": state.region, "AWS_DEFAULT_REGION": state.region,
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    if installed_as == "one-file":  # issue 20 section 7: the zipapp, run by this Python
        from tools.client_zipapp import build

        stsvend = [sys.executable, str(build(tmp_path / "stsvend-client.pyz"))]
    else:
        stsvend = [str(Path(sys.executable).parent / "stsvend")]
    done = subprocess.run([*stsvend, "configure", "--api", state.api_url], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    record_output(done.stdout)
    record_output(done.stderr)
    assert done.returncode == 0, done.stderr
    configured = done.stdout + done.stderr
    written = config.read_text()
    [line] = [line for line in written.splitlines() if line.startswith("credential_process = ")]
    words = shlex.split(line.partition(" = ")[2])
    assert Path(words[0]).resolve() == Path(sys.executable).resolve() and words[1:3] == ["-I", "-c"]
    assert ("stsvend-client.pyz" in words[3]) is (installed_as == "one-file")
    assert words[4:] == ["credentials", "--api", state.api_url, "--role", state.roles["deployer"],
                         "--duration", "3600", "--source-profile", "default"]

    done = subprocess.run(["sh", "-c", 'command -v stsvend || exec "$@"', "sh", sys.executable,
                           "-m", "awscli", "sts", "get-caller-identity", "--output", "json"],
                          cwd=tmp_path, env={**env, "AWS_PROFILE": "stsvend-deployer"},
                          capture_output=True, text=True, timeout=120, check=False)
    record_output(done.stdout)
    record_output(done.stderr)
    assert done.returncode == 0, done.stderr
    assert arn_of("aws-cli", done.stdout).startswith("arn:aws:sts::222222222222:assumed-role/deployer/")

    # The other SDKs through the same written profile: JS v2 given what configure's advice names.
    assert "AWS_SDK_LOAD_CONFIG=1" in configured
    for client in ("js-sdk-v2", "awscrt"):
        done = run_client(client, {**env, "AWS_PROFILE": "stsvend-deployer"},
                          js_clients if client in JS else None)
        assert done.returncode == 0, (client, done.stderr)
        assert arn_of(client, done.stdout).startswith(
            "arn:aws:sts::222222222222:assumed-role/deployer/"), client
