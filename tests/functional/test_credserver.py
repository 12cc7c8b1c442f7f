"""`stsvend exec` and `stsvend serve` as a user runs them, against the fake stsvend API of
tests/functional/fake_api.py: the container-credentials endpoint, the child's environment, renewal, nesting,
signals and exit statuses. The same against the local stack with real clients: tests/e2e/test_agents.py."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.functional.fake_api import (
    AMBIENT_KEY,
    AMBIENT_SECRET,
    ROLE,
    ROOT,
    VENDED_SECRET,
    VENDED_TOKEN,
    FakeApi,
    Received,
    Reply,
    assert_no_secret,
    base_env,
    run_cli,
    vended_answer,
)

OTHER_KEY = "AKIASHAREDFILEDEFAULT"
OTHER_SECRET = "shared-file-secret-must-never-be-used"

# The child: what a botocore client resolves, from where, and what its environment holds.
BOTOCORE_CHILD = """
import json, os, sys
import botocore.session
credentials = botocore.session.get_session().get_credentials()
print(json.dumps({"method": credentials.method,
                  "access_key": credentials.get_frozen_credentials().access_key,
                  "env": dict(os.environ)}))
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def numbered_answers(lifetime: timedelta) -> Any:
    """A route that vends a new access key on each call."""
    counter = itertools.count(1)

    def reply(request: Received) -> Reply:
        expiration = datetime.now(timezone.utc) + lifetime
        return 200, {}, {**vended_answer(), "AccessKeyId": f"ASIAVENDEDNUMBER{next(counter):04d}",
                         "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}

    return reply


def agent_env(tmp_path: Path) -> dict[str, str]:
    """The agent's environment: its key in env vars, and other keys as [default] in the shared
    credentials and config files, which an SDK would read before the container endpoint."""
    environment = base_env(tmp_path)
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[default]\naws_access_key_id = {OTHER_KEY}\naws_secret_access_key = {OTHER_SECRET}\n"
    )
    Path(environment["AWS_CONFIG_FILE"]).write_text(
        f"[default]\nregion = eu-west-3\naws_access_key_id = {OTHER_KEY}\n"
        f"aws_secret_access_key = {OTHER_SECRET}\n"
    )
    return environment


def child_report(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def get(url: str, token: str | None, host: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", token)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- exec: the child and its environment -------------------------------------------------------


def test_exec_child_resolves_the_served_role_not_the_agents_keys_and_holds_no_secret(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = agent_env(tmp_path)
    environment["AWS_PROFILE"] = "default"
    environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/elsewhere"
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", BOTOCORE_CHILD, "5", env=environment)

    assert done.returncode == 5, done.stderr
    seen = child_report(done.stdout)
    assert (seen["method"], seen["access_key"]) == ("container-role", "ASIAVENDEDBYFAKEAPI1")
    child_env = seen["env"]
    assert child_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    assert len(child_env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]) >= 40
    assert child_env["STSVEND_EXEC"] == ROLE
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        assert name not in child_env
    text = json.dumps(child_env)
    for secret in (AMBIENT_SECRET, VENDED_SECRET, VENDED_TOKEN, OTHER_SECRET):
        assert secret not in text
    # The child's shared files hold the agent's region and nothing else; they go with the run.
    assert Path(child_env["AWS_CONFIG_FILE"]).parent == Path(child_env["BOTO_CONFIG"]).parent
    assert not Path(child_env["AWS_CONFIG_FILE"]).parent.exists()
    assert_no_secret(done.stderr)


REGION_CHILD = """
import json, os
print(json.dumps({"config": open(os.environ["AWS_CONFIG_FILE"]).read(),
                  "credentials": open(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).read()}))
"""


def test_exec_child_config_keeps_only_the_agents_region(api: FakeApi, tmp_path: Path) -> None:
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", REGION_CHILD, env=agent_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert child_report(done.stdout) == {"config": "[default]\nregion = eu-west-3\n", "credentials": ""}


def test_exec_env_child_starts_with_most_of_the_life_ahead(api: FakeApi, tmp_path: Path) -> None:
    short = {**vended_answer(), "AccessKeyId": "ASIAVENDEDSHORTLIFE1",
             "Expiration": (datetime.now(timezone.utc) + timedelta(minutes=20)).strftime(
                 "%Y-%m-%dT%H:%M:%SZ")}
    fresh = vended_answer()
    api.reply("POST", "/credentials", (200, {}, short), (200, {}, fresh))
    environment = base_env(tmp_path)
    cached = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert json.loads(cached.stdout)["AccessKeyId"] == "ASIAVENDEDSHORTLIFE1"

    child = ("import json, os; print(json.dumps({n: os.environ.get(n) for n in ("
             "'AWS_ACCESS_KEY_ID', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_SESSION_EXPIRATION')}))")
    done = run_cli("exec", "--env", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", child, env=environment)

    assert done.returncode == 0, done.stderr
    assert child_report(done.stdout) == {
        "AWS_ACCESS_KEY_ID": "ASIAVENDEDBYFAKEAPI1",
        "AWS_CREDENTIAL_EXPIRATION": fresh["Expiration"],
        "AWS_SESSION_EXPIRATION": fresh["Expiration"],
    }
    assert len(api.calls("POST", "/credentials")) == 2


# -- the endpoint ------------------------------------------------------------------------------

ENDPOINT_CHILD = """
import json, os, urllib.request, urllib.error
url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
token = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
port = url.split(":")[2].split("/")[0]

def get(url, headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())

results = {}
results["none"] = get(url, {})
results["wrong"] = get(url, {"Authorization": token[:-1] + ("A" if token[-1] != "A" else "B")})
results["path"] = get(url.replace("/credentials", "/other"), {"Authorization": token})
results["host"] = get(url, {"Authorization": token, "Host": "attacker.example:" + port})
status, body = get(url, {"Authorization": token})
results["right"] = [status, sorted(body), body["AccessKeyId"], body["Expiration"]]
request = urllib.request.Request(url, data=b"{}", headers={"Authorization": token}, method="POST")
try:
    urllib.request.urlopen(request, timeout=10)
except urllib.error.HTTPError as error:
    results["post"] = error.code
print(json.dumps({"results": results, "url": url}))
"""


def test_endpoint_answers_only_with_the_runs_token_on_its_path_and_host(
    api: FakeApi, tmp_path: Path
) -> None:
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", ENDPOINT_CHILD, env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    report = child_report(done.stdout)
    results = report["results"]
    assert results["none"][0] == 401 and results["none"][1]["Code"] == "NotAuthenticated"
    assert results["wrong"][0] == 401 and results["wrong"][1]["Code"] == "NotAuthenticated"
    assert results["path"][0] == 404
    assert results["host"][0] == 404
    assert results["post"] == 405
    assert results["right"] == [
        200, ["AccessKeyId", "Expiration", "SecretAccessKey", "Token"], "ASIAVENDEDBYFAKEAPI1",
        api.routes[("POST", "/credentials")][0][2]["Expiration"],
    ]
    # The server stopped with the child.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(report["url"], timeout=5)
    assert len(api.calls("POST", "/credentials")) == 1


RENEWING_CHILD = """
import json, time
import botocore.session
credentials = botocore.session.get_session().get_credentials()
keys = []
for _ in range(4):
    keys.append(credentials.get_frozen_credentials().access_key)
    time.sleep(1.2)
print(json.dumps(keys))
"""


def test_exec_vends_again_with_the_same_request_when_the_window_is_reached(
    api: FakeApi, tmp_path: Path
) -> None:
    # 14 minutes: within botocore's advisory window, so the child asks the endpoint on each use;
    # a refresh window of 839 s makes answers a second old due for renewal.
    api.reply("POST", "/credentials", numbered_answers(timedelta(minutes=14)))
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--tag", "build-id=7",
                   "--session-name", "b7", "--duration", "3600", "--refresh-window", "839", "--",
                   sys.executable, "-c", RENEWING_CHILD, env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    keys = child_report(done.stdout)
    assert len(set(keys)) > 1, keys
    calls = api.calls("POST", "/credentials")
    assert len(calls) >= 2
    assert {c.body for c in calls} == {json.dumps({"role_arn": ROLE, "duration_seconds": 3600,
                                                   "tags": {"build-id": "7"},
                                                   "session_name": "b7"}).encode()}


# -- nesting, exit statuses, signals -----------------------------------------------------------


@pytest.mark.parametrize("inner", [["exec", "--", "true"], ["exec", "--env", "--", "true"], ["serve"]])
def test_exec_inside_exec_is_refused_with_the_reason(
    api: FakeApi, tmp_path: Path, inner: list[str]
) -> None:
    command = [sys.executable, "-m", "stsvend.cli", inner[0], "--api", api.url, "--role", ROLE,
               *inner[1:]]
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--", *command, env=base_env(tmp_path))

    assert done.returncode == 2
    assert "stsvend: NestedExec: already inside 'stsvend exec' for " + ROLE in done.stderr
    assert "unset STSVEND_EXEC" in done.stderr
    assert len(api.calls("POST", "/credentials")) == 1  # the outer one only


def test_exec_does_not_start_the_command_when_the_role_cannot_be_had(
    api: FakeApi, tmp_path: Path
) -> None:
    api.reply("POST", "/credentials", (403, {}, {"Code": "RoleNotGranted", "Message": "no"}))
    marker = tmp_path / "ran"
    done = run_cli("exec", "--api", api.url, "--role", ROLE, "--", "touch", str(marker),
                   env=base_env(tmp_path))
    assert done.returncode == 3
    assert done.stderr == "stsvend: RoleNotGranted: no\n"
    assert not marker.exists()


SIGNAL_CHILD = """
import signal, sys, time
def handler(signum, frame):
    print(f"child got {signum}", flush=True)
    sys.exit(40 + signum)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, handler)
print("ready", flush=True)
time.sleep(60)
sys.exit(1)
"""


def start_exec(api: FakeApi, tmp_path: Path, child: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "exec", "--api", api.url, "--role", ROLE, "--",
         sys.executable, "-c", child],
        env=base_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
def test_exec_forwards_signals_and_exits_with_the_childs_status(
    api: FakeApi, tmp_path: Path, signum: int
) -> None:
    process = start_exec(api, tmp_path, SIGNAL_CHILD)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)

    assert process.returncode == 40 + signum, err
    assert out == f"child got {signum}\n"
    assert_no_secret(out, err)


def test_exec_ends_by_the_signal_that_ended_the_child(api: FakeApi, tmp_path: Path) -> None:
    process = start_exec(api, tmp_path, "import time; print('ready', flush=True); time.sleep(60)")
    process.send_signal(signal.SIGTERM)  # the child does not handle it: it dies of it
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM


COUNTING_CHILD = """
import os, select, signal, sys, time
# The wakeup fd gets a byte for every SIGINT that arrives, even when Python runs the handler once.
readable, writable = os.pipe()
os.set_blocking(readable, False)
os.set_blocking(writable, False)
signal.signal(signal.SIGINT, lambda signum, frame: None)
signal.set_wakeup_fd(writable)
print("ready", flush=True)
select.select([readable], [], [], 30)
time.sleep(1)  # a second SIGINT, if one is sent, arrives well within this
sys.exit(50 + len(os.read(readable, 100)))
"""


def test_ctrl_c_at_a_terminal_reaches_the_child_once(api: FakeApi, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()

    def take_the_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "exec", "--api", api.url, "--role", ROLE, "--",
         sys.executable, "-c", COUNTING_CHILD],
        env=base_env(tmp_path), cwd=ROOT, stdin=terminal, stdout=terminal, stderr=terminal,
        start_new_session=True, preexec_fn=take_the_terminal,
    )
    os.close(terminal)
    try:
        seen = b""
        while b"ready" not in seen:
            seen += os.read(controller, 1024)
        os.write(controller, b"\x03")  # the terminal signals its whole foreground process group
        assert process.wait(timeout=30) == 51, "the child got SIGINT once, from the terminal"
    finally:
        process.kill()
        os.close(controller)


# -- serve -------------------------------------------------------------------------------------


def test_serve_prints_the_two_variables_and_serves_until_terminated(
    api: FakeApi, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "stsvend.cli", "serve", "--api", api.url, "--role", ROLE],
        env=base_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        exports = dict(process.stdout.readline().removeprefix("export ").strip().split("=", 1)
                       for _ in range(2))
        url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        token = exports["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/credentials")

        assert get(url, None)[0] == 401
        assert get(url, "x" * len(token))[0] == 401
        status, body = get(url, token)
        assert status == 200 and body["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
        assert body["SecretAccessKey"] == VENDED_SECRET and body["Token"] == VENDED_TOKEN

        environment = {**base_env(tmp_path), **exports}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            del environment[name]
        child = subprocess.run([sys.executable, "-c", BOTOCORE_CHILD], env=environment,
                               capture_output=True, text=True, timeout=60)
        seen = child_report(child.stdout)
        assert (seen["method"], seen["access_key"]) == ("container-role", "ASIAVENDEDBYFAKEAPI1")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"serving credentials for {ROLE}" in err
    assert_no_secret(out, err)
    assert AMBIENT_KEY not in out
    assert len(api.calls("POST", "/credentials")) == 1


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("serve", ["--refresh-window", "-1"], "--refresh-window must be 0 or more"),
        ("serve", ["--refresh-window", "900", "--duration", "900"],
         "--refresh-window must be below the duration (900 s)"),
        ("exec", ["--refresh-window", "3600", "--", "true"],
         "--refresh-window must be below the duration (3600 s)"),
    ],
)
def test_a_refresh_window_that_would_vend_on_every_request_is_refused(
    api: FakeApi, tmp_path: Path, command: str, options: list[str], message: str
) -> None:
    done = run_cli(command, "--api", api.url, "--role", ROLE, *options, env=base_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"stsvend: InvalidRequest: {message}")
    assert api.received == []
