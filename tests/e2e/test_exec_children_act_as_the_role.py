"""A child of `stsvend exec` acts as the vended role in every SDK, whatever the agent's own files say.

The agent is the usual on-premises one: its keys in the environment (Jenkins), and *another*
identity's valid keys (sample-app) in `$HOME/.aws/credentials`, `$HOME/.aws/config` and `~/.boto`,
the default places, with no AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE set. Each SDK looks at
some of those before the container endpoint (the JavaScript SDK v2 reads `$HOME/.aws/credentials`
unless AWS_SDK_LOAD_CONFIG is set, whatever AWS_SHARED_CREDENTIALS_FILE says), so a child that
found them would act as sample-app. Each real client calls sts:GetCallerIdentity against the local
stack's emulator and must be the role's session: boto3, the AWS CLI v1, the JavaScript SDKs v3 and
v2 (npm, tests/js/package-lock.json) and the AWS Common Runtime (awscrt from PyPI, which also sends
`Host: 127.0.0.1` without the port).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output
from tests.e2e.test_vending import DEPLOYER

pytestmark = pytest.mark.e2e

# awscrt's own default chain and SigV4 signer; the signed request goes to the emulator's STS.
AWSCRT_CHILD = """
import io, json, os, re, urllib.error, urllib.request
from urllib.parse import urlsplit
from awscrt import auth, http

provider = auth.AwsCredentialsProvider.new_default_chain()
credentials = provider.get_credentials().result(timeout=30)
endpoint = os.environ["AWS_ENDPOINT_URL"]
body = b"Action=GetCallerIdentity&Version=2011-06-15"
request = http.HttpRequest("POST", "/", http.HttpHeaders([
    ("Host", urlsplit(endpoint).netloc),
    ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    ("Content-Length", str(len(body))),
]), io.BytesIO(body))
config = auth.AwsSigningConfig(
    algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
    credentials_provider=auth.AwsCredentialsProvider.new_static(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
    region=os.environ["AWS_REGION"], service="sts")
signed = auth.aws_sign_request(request, config).result(timeout=30)
sent = urllib.request.Request(endpoint + "/", data=body, method="POST",
                              headers={name: value for name, value in signed.headers})
try:
    with urllib.request.urlopen(sent, timeout=30) as answer:
        arn = re.search(r"<Arn>([^<]+)</Arn>", answer.read().decode()).group(1)
except urllib.error.HTTPError as error:
    raise SystemExit(f"GetCallerIdentity: HTTP {error.code}: {error.read().decode()[:1500]}")
print(json.dumps({"arn": arn, "accessKeyId": credentials.access_key_id}))
"""

BOTO3_CHILD = """
import json, boto3
session = boto3.Session()
print(json.dumps({"arn": session.client("sts").get_caller_identity()["Arn"],
                  "accessKeyId": session.get_credentials().get_frozen_credentials().access_key,
                  "method": session.get_credentials().method}))
"""


def agent_at_home(state: LocalState, tmp_path: Path) -> dict[str, str]:
    """Jenkins' keys in the environment; sample-app's in the default files under $HOME."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    other = state.identities["sample-app"]
    keys = f"aws_access_key_id = {other.access_key_id}\naws_secret_access_key = {other.secret_access_key}\n"
    (home / ".aws" / "credentials").write_text(f"[default]\n{keys}")
    (home / ".aws" / "config").write_text(f"[default]\nregion = {state.region}\n{keys}")
    (home / ".boto").write_text(f"[Credentials]\n{keys}")
    environment = {**hermetic_environment(), **state.environment("jenkins"),
                   "HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"):
        environment.pop(name, None)
    return environment


def sample_app_would_be_found(state: LocalState, tmp_path: Path) -> None:
    """The decoys are live: outside `stsvend exec`, with only $HOME, boto3 acts as sample-app."""
    environment = agent_at_home(state, tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        del environment[name]
    done = subprocess.run([sys.executable, "-c", BOTO3_CHILD], env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["arn"] == state.identities["sample-app"].arn


def stsvend_exec(
    state: LocalState, tmp_path: Path, session_name: str, command: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", "exec", "--role", DEPLOYER, "--session-name",
         session_name, "--", *command],
        cwd=cwd, env=agent_at_home(state, tmp_path), capture_output=True, text=True, timeout=180,
    )
    record_output(done.stdout)
    record_output(done.stderr)
    return done


def _aws_cli(js: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "aws"), "sts", "get-caller-identity", "--output", "json"]


CLIENTS: dict[str, Callable[[Path], list[str]]] = {
    "boto3": lambda js: [sys.executable, "-c", BOTO3_CHILD],
    "aws-cli": _aws_cli,
    "js-sdk-v3": lambda js: ["node", str(js / "sts_child.mjs"), "1", "0"],
    "js-sdk-v2": lambda js: ["node", str(js / "caller_identity_v2.js")],
    "awscrt": lambda js: [sys.executable, "-c", AWSCRT_CHILD],
}


def caller_arn(client: str, stdout: str) -> str:
    seen = json.loads(stdout.strip().splitlines()[-1] if client != "aws-cli" else stdout)
    if client == "js-sdk-v3":
        seen = seen[0]
    return str(seen["Arn"] if client == "aws-cli" else seen["arn"])


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_the_child_is_the_role_not_the_keys_in_the_agents_home(
    stack: LocalStack, tmp_path: Path, js_clients: Path, client: str
) -> None:
    sample_app_would_be_found(stack.state, tmp_path / "probe")
    name = f"{client}-{uuid.uuid4().hex[:8]}"
    done = stsvend_exec(stack.state, tmp_path, name, CLIENTS[client](js_clients), cwd=js_clients)

    assert done.returncode == 0, done.stderr
    assert caller_arn(client, done.stdout) == (
        f"arn:aws:sts::222222222222:assumed-role/deployer/jenkins-{name}"
    )
    assert stack.state.identities["sample-app"].access_key_id not in done.stdout
