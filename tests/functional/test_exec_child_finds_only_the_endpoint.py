"""The environment of `stsvend exec`'s child leads every SDK to the endpoint and nowhere else,
beyond what botocore shows (tests/functional/test_credserver.py) and the real SDKs show against the
local stack (tests/e2e/test_exec_children_act_as_the_role.py): the JavaScript SDK v2 gets
AWS_SDK_LOAD_CONFIG (so it reads the run's empty shared files, not `$HOME/.aws/credentials`), and
a Java system property naming credentials, which the Java SDKs read ahead of the environment, is
refused rather than handed to a JVM the job starts."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.functional import fake_api
from tests.functional.fake_api import ROLE, FakeApi, Received, Reply, base_env, run_cli, vended_answer

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


@pytest.mark.parametrize(
    "variable", ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS", "MAVEN_OPTS"]
)
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (f"-Xmx1g -Daws.accessKeyId=AKIAJAVAOPTIONS00001 -Daws.secretAccessKey={SECRET_IN_OPTIONS}",
         "aws.accessKeyId"),
        ("-Daws.profile=agent", "aws.profile"),
        ("-Dfoo=1  -Daws.sharedCredentialsFile=/home/agent/.aws/credentials", "aws.sharedCredentialsFile"),
        ("-Daws.containerCredentialsFullUri=http://127.0.0.1:9/x", "aws.containerCredentialsFullUri"),
        ("-Daws.webIdentityTokenFile=/var/token", "aws.webIdentityTokenFile"),
        ("-Daws.disableEc2Metadata=false", "aws.disableEc2Metadata"),
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
    options = "-Daws.region=eu-west-1 -Daws.disableEc2Metadata=true"
    environment = {**base_env(tmp_path), "JAVA_TOOL_OPTIONS": options}
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--", sys.executable, "-c", CHILD,
                   env=environment)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["JAVA_TOOL_OPTIONS"] == environment["JAVA_TOOL_OPTIONS"]


# -- when the endpoint answers with an error --------------------------------------------------

DECOY_INSTANCE_KEY = "ASIAINSTANCEROLEDECOY"


class FakeInstanceMetadata(BaseHTTPRequestHandler):
    """An EC2 instance's metadata service (IMDSv2) whose role is the agent's own."""

    hits: list[str] = []

    def _send(self, body: str) -> None:
        FakeInstanceMetadata.hits.append(f"{self.command} {self.path}")
        raw = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_PUT(self) -> None:
        self._send("imds-session-token")

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("security-credentials"):
            self._send("agent-instance-role")
            return
        expiration = datetime.now(timezone.utc) + timedelta(hours=6)
        self._send(json.dumps({
            "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": DECOY_INSTANCE_KEY,
            "SecretAccessKey": "instance-role-secret", "Token": "instance-role-token",
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "LastUpdated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def instance_metadata() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeInstanceMetadata)
    FakeInstanceMetadata.hits = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# A fresh JavaScript SDK v2 chain; then, once the endpoint refuses (the renewal was refused), another.
JS_V2_CHAINS = """
const AWS = require("aws-sdk");
const fs = require("fs");
const http = require("http");
const resolve = () => new Promise((done) => new AWS.CredentialProviderChain().resolve(
  (error, credentials) => done(error ? { error: error.code || error.message }
                                     : { accessKeyId: credentials.accessKeyId })));
const status = () => new Promise((done) => http.get(process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
  { headers: { Authorization: process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN } },
  (answer) => { answer.resume(); done(answer.statusCode); }));
(async () => {
  const first = await resolve();
  fs.writeFileSync(process.env.FIRST_RESOLVED, "");
  for (let tries = 0; tries < 600 && (await status()) === 200; tries += 1) {
    await new Promise((done) => setTimeout(done, 100));
  }
  console.log(JSON.stringify([first, await resolve()]));
})();
"""


def test_a_javascript_sdk_v2_child_never_falls_back_to_the_instance_role(
    api: FakeApi, tmp_path: Path, js_clients: Path, instance_metadata: str
) -> None:
    counter = itertools.count(1)
    first_resolved = tmp_path / "first-resolved"

    def first_then_refused(request: Received) -> Reply:
        if next(counter) == 1:
            expiration = datetime.now(timezone.utc) + timedelta(minutes=15)
            return 200, {}, {**vended_answer(), "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for _ in range(600):  # the renewal is refused once the child has had its first credentials
            if first_resolved.exists():
                break
            time.sleep(0.1)
        return 403, {}, {"Code": "RoleNotGranted", "Message": "the grant was removed"}

    api.reply("POST", "/credentials", first_then_refused)
    environment = {**base_env(tmp_path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": instance_metadata,
                   "FIRST_RESOLVED": str(first_resolved)}
    del environment["AWS_EC2_METADATA_DISABLED"]  # an EC2 agent: its metadata service answers
    done = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", "exec", "--api", api.url, "--role", ROLE,
         "--duration", "900", "--refresh-window", "898", "--", "node", "-e", JS_V2_CHAINS],
        cwd=js_clients, env=environment, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    first, after_refusal = json.loads(done.stdout.splitlines()[-1])
    assert first == {"accessKeyId": "ASIAVENDEDBYFAKEAPI1"}
    assert "accessKeyId" not in after_refusal, after_refusal
    assert not any("security-credentials" in hit for hit in FakeInstanceMetadata.hits)


OTHER_SECRET = "agent-alternate-secret-must-not-reach-the-child"


ENV_CHILD = "import json, os; print(json.dumps(dict(os.environ)))"


def test_exec_child_sees_no_credentials_under_the_names_other_sdks_read(
    api: FakeApi, tmp_path: Path
) -> None:
    """Go (v1, v2), Java v1 and Ruby read AWS_ACCESS_KEY / AWS_SECRET_KEY (Ruby AMAZON_* too) before
    the container endpoint, and Java v1 reads AWS_CREDENTIAL_PROFILES_FILE (default
    ~/.aws/credentials), not AWS_SHARED_CREDENTIALS_FILE: a child would run as the agent."""
    environment = base_env(tmp_path)
    environment.update(
        AWS_ACCESS_KEY="AKIAAGENTALTERNATE01", AWS_SECRET_KEY=OTHER_SECRET,
        AMAZON_ACCESS_KEY_ID="AKIAAGENTALTERNATE02", AMAZON_SECRET_ACCESS_KEY=OTHER_SECRET,
        AMAZON_SESSION_TOKEN=OTHER_SECRET,
        AWS_CREDENTIAL_PROFILES_FILE=str(tmp_path / "java-credentials"),
    )
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", ENV_CHILD, env=environment)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AMAZON_ACCESS_KEY_ID",
                 "AMAZON_SECRET_ACCESS_KEY", "AMAZON_SESSION_TOKEN"):
        assert name not in child
    assert OTHER_SECRET not in json.dumps(child)
    # Java v1's credentials file is the run's empty one, as every other SDK's.
    assert child["AWS_CREDENTIAL_PROFILES_FILE"] == child["AWS_SHARED_CREDENTIALS_FILE"]
    fake_api.assert_no_secret(done.stdout, done.stderr)
