"""CI jobs without AWS credentials, against the local stack: tokens from its local issuers, the
client on the OIDC path (no AWS credentials, no botocore), the composite GitHub Action and the
GitLab CI snippet run as their runners would run them, and the runner's token endpoint played here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from stsvend.checkout.local_state import STATE_DIR_VARIABLE
from stsvend.local.oidc_issuer import Signer
from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output, record_vended

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUNNER_SECRET = "runner-request-token-not-real"
GITHUB_RUN = "gh-400000001-7000000001-1"


def _signer(state: LocalState, name: str) -> Signer:
    issuer = state.oidc_issuers[name]
    return Signer.load(issuer["kind"], issuer["issuer"], Path(issuer["key_file"]).read_bytes())


def _job_env(state: LocalState, **extra: str) -> dict[str, str]:
    """A CI job's environment: the venv's commands, the API URL; no AWS credentials or profile."""
    env = hermetic_environment()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["STSVEND_API_URL"] = state.api_url
    env.update(extra)
    return env


def _stsvend(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, reporting on stderr's last line which botocore modules it loaded."""
    probe = (
        "import sys, json; from stsvend.cli import main; status = main(sys.argv[1:]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3'))),"
        " file=sys.stderr); sys.exit(status)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    record_output(result.stderr)
    if result.returncode == 0 and result.stdout.startswith("{"):
        record_vended(json.loads(result.stdout))
    return result


def _loaded_botocore(result: subprocess.CompletedProcess[str]) -> list[str]:
    loaded: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return loaded


def test_local_token_prints_a_token_its_issuer_signed_shaped_like_gitlab(
    stack: LocalStack, state: LocalState
) -> None:
    env = {**hermetic_environment(), STATE_DIR_VARIABLE: str(stack.state_dir)}
    claims = json.dumps({"ref": "dev", "user_login": None})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stsvend.cli",
            "local",
            "token",
            "--root",
            str(ROOT),
            "--issuer",
            "gitlab-local",
            "--claims",
            claims,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    issuer = state.oidc_issuers["gitlab-local"]
    # Verified with the key its JWKS serves over HTTP.
    keys = jwt.PyJWKClient(issuer["issuer"] + "/.well-known/jwks")
    claims_seen = jwt.decode(
        token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"], audience=issuer["audience"]
    )
    assert claims_seen["iss"] == issuer["issuer"]
    assert claims_seen["ref"] == "dev" and "user_login" not in claims_seen
    assert claims_seen["project_id"] == "2048" and claims_seen["pipeline_source"] == "push"


def test_local_token_names_the_issuers_it_knows(stack: LocalStack) -> None:
    env = {**hermetic_environment(), STATE_DIR_VARIABLE: str(stack.state_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", "local", "token", "--root", str(ROOT), "--issuer", "jenkins"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and result.stdout == ""
    assert "UnknownIssuer" in result.stderr and "github-local" in result.stderr


def test_a_github_job_gets_read_only_without_aws_credentials_or_botocore(
    state: LocalState, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_signer(state, "github-local").token() + "\n")
    role = state.roles["read-only"]

    result = _stsvend(
        ["credentials", "--role", role, "--oidc-token-file", str(token_file), "--format", "json"],
        _job_env(state),
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["AssumedRoleArn"].endswith(f"assumed-role/read-only/{GITHUB_RUN}")
    assert answer["SourceIdentity"] == GITHUB_RUN
    assert _loaded_botocore(result) == []


@pytest.mark.parametrize(
    "claims",
    [
        {"event_name": "pull_request", "ref": "refs/pull/7/merge"},
        {"event_name": "pull_request_target"},
        {"repository_id": "400000999"},  # the same name, re-created: another repository
    ],
    ids=["pull_request", "pull_request_target", "recycled-name"],
)
def test_runs_the_grant_does_not_admit_get_nothing(state: LocalState, claims: dict[str, Any]) -> None:
    token = _signer(state, "github-local").token(**claims)
    result = _stsvend(
        ["credentials", "--role", state.roles["read-only"], "--oidc-token-env", "TOKEN"],
        _job_env(state, TOKEN=token),
    )
    assert result.returncode == 3
    assert result.stdout == ""
    assert "CallerNotAllowed" in result.stderr


@pytest.mark.parametrize(
    ("issuer", "run"),
    [
        ("gitlab-local", "gl-2048-99001-550001"),
        ("buildkite-local", "bk-314-01900000-0000-7000-8000-000000000001"),
    ],
)
def test_gitlab_and_buildkite_jobs_get_read_only(state: LocalState, issuer: str, run: str) -> None:
    result = _stsvend(
        ["credentials", "--role", state.roles["read-only"], "--oidc-token-env", "TOKEN", "--format", "json"],
        _job_env(state, TOKEN=_signer(state, issuer).token()),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["SourceIdentity"] == run[:64]


# --- the GitHub runner's side ---------------------------------------------------------------------


class Runner:
    """The runner's ID token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): a bearer-authenticated GET
    that answers {"value": token} for the audience asked."""

    def __init__(self, signer: Signer) -> None:
        self.audiences: list[str] = []
        runner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if self.headers.get("Authorization") != f"bearer {RUNNER_SECRET}":
                    self.send_error(401)
                    return
                audience = query.get("audience", [""])[0]
                runner.audiences.append(audience)
                body = json.dumps({"value": signer.token(audience)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def env(self) -> dict[str, str]:
        port = self.server.server_address[1]
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{port}/_apis/distributedtask/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": RUNNER_SECRET,
        }


@pytest.fixture
def runner(state: LocalState) -> Iterator[Runner]:
    played = Runner(_signer(state, "github-local"))
    yield played
    played.server.shutdown()
    played.server.server_close()


def test_github_actions_asks_the_runner_for_a_token_with_the_audience(
    state: LocalState, runner: Runner
) -> None:
    result = _stsvend(
        ["credentials", "--role", state.roles["read-only"], "--github-actions", "--format", "json"],
        _job_env(state, **runner.env),
    )
    assert result.returncode == 0, result.stderr
    assert runner.audiences == ["stsvend"]
    assert _loaded_botocore(result) == []
    # A runner that refuses the request token: no credentials, a clear error.
    refused = _stsvend(
        ["credentials", "--role", state.roles["read-only"], "--github-actions"],
        _job_env(state, **{**runner.env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}),
    )
    assert refused.returncode == 3 and refused.stdout == ""
    assert "the runner answered HTTP 401" in refused.stderr


def _expressions(text: str, inputs: dict[str, str]) -> str:
    """The runner's `${{ inputs.NAME }}` substitution."""
    return re.sub(r"\$\{\{\s*inputs\.([a-z_-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)


def _run_action(state: LocalState, runner: Runner, tmp_path: Path, **given: str) -> tuple[int, str, Path]:
    action = yaml.safe_load((ROOT / "ci" / "github-action" / "action.yml").read_text())
    inputs = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    inputs.update(given)
    assert action["runs"]["using"] == "composite"
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    output = ""
    for step in action["runs"]["steps"]:
        if (
            "if" in step
            and _expressions("${{ " + step["if"].split("==")[0].strip() + " }}", inputs) != "true"
        ):
            continue
        env = _job_env(state, **runner.env, GITHUB_ENV=str(github_env), RUNNER_TEMP=str(tmp_path))
        env.pop("STSVEND_API_URL")  # the action passes its api input
        env.update({k: _expressions(v, inputs) for k, v in step.get("env", {}).items()})
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output += done.stdout + done.stderr
        record_output(output)
        if done.returncode != 0:
            return done.returncode, output, github_env
    return 0, output, github_env


def test_the_composite_action_gives_later_steps_the_role(
    state: LocalState, runner: Runner, tmp_path: Path
) -> None:
    role = state.roles["read-only"]
    status, output, github_env = _run_action(
        state, runner, tmp_path, api=state.api_url, role=role, install="false"
    )
    assert status == 0, output
    exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert set(exported) == {"AWS_CONFIG_FILE", "AWS_PROFILE"}  # no key in the job's environment
    # A later step: the AWS CLI, with the exported profile, against the emulator.
    later = {
        **_job_env(state, **runner.env),
        **exported,
        "AWS_ENDPOINT_URL": state.emulator_url,
        "AWS_DEFAULT_REGION": state.region,
    }
    later.pop("STSVEND_API_URL")
    done = subprocess.run(
        [str(BIN / "aws"), "sts", "get-caller-identity", "--output", "json"],
        env=later,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"].endswith(f"assumed-role/read-only/{GITHUB_RUN}")
    assert runner.audiences and set(runner.audiences) == {"stsvend"}


@pytest.mark.parametrize(
    "bad", ["arn:aws:iam::111111111111:role/read-only\ncredential_process = sh", "--help"]
)
def test_the_composite_action_refuses_an_input_that_is_not_one_word(
    state: LocalState, runner: Runner, tmp_path: Path, bad: str
) -> None:
    status, output, github_env = _run_action(
        state, runner, tmp_path, api=state.api_url, role=bad, install="false"
    )
    assert status != 0
    assert "::error::stsvend: the role input is not valid" in output
    assert github_env.read_text() == ""
    assert runner.audiences == []


def test_the_gitlab_snippet_gives_the_job_script_the_role(state: LocalState, tmp_path: Path) -> None:
    snippet = yaml.safe_load((ROOT / "ci" / "gitlab" / "stsvend.gitlab-ci.yml").read_text())
    job = snippet[".stsvend"]
    audience = job["id_tokens"]["STSVEND_ID_TOKEN"]["aud"]
    token = _signer(state, "gitlab-local").token(audience)
    # GitLab runs before_script and script as one shell script, the ID token in the job's variables.
    script = "\n".join([*job["before_script"], "aws sts get-caller-identity --output json"])
    env = _job_env(
        state,
        STSVEND_ID_TOKEN=token,
        STSVEND_ROLE=state.roles["read-only"],
        AWS_ENDPOINT_URL=state.emulator_url,
        AWS_DEFAULT_REGION=state.region,
        TMPDIR=str(tmp_path),
    )
    env.pop("AWS_CONFIG_FILE")
    done = subprocess.run(
        ["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    record_output(done.stderr)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"].endswith("assumed-role/read-only/gl-2048-99001-550001")


def test_exec_serves_the_role_to_the_aws_cli_from_a_token_file(state: LocalState, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_signer(state, "buildkite-local").token())
    env = _job_env(state, AWS_ENDPOINT_URL=state.emulator_url, AWS_DEFAULT_REGION=state.region)
    argv = ["exec", "--role", state.roles["read-only"], "--oidc-token-file", str(token_file), "--"]
    done = subprocess.run(
        [sys.executable, "-m", "stsvend.cli", *argv, str(BIN / "aws"), "sts", "get-caller-identity"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    record_output(done.stderr)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"].endswith(
        "assumed-role/read-only/bk-314-01900000-0000-7000-8000-000000000001"
    )
