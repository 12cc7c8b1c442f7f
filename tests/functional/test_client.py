"""The `stsvend` client over real HTTP: the fake stsvend API on loopback (tests/functional/fake_api.py)
stands in for the service, and a moto server (its own process, IAM auth enforced) checks the
identity proofs."""

from __future__ import annotations

import base64
import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ProcessProvider
from botocore.session import Session

from chalicelib.errors import NotAuthenticated
from chalicelib.identity import StsProofVerifier
from stsvend import cli
from stsvend.client.answers import NOT_AUTHENTICATED_HINT
from stsvend.client.location import server_id_for
from stsvend.client.signing import Signer, request_binding
from stsvend.errors import CommandError
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

SERVER_ID = "https://stsvend.example/api"
BINDING = request_binding("GET", "/whoami", b"")


# -- credentials, cache and concurrency ------------------------------------------------------


def test_cold_cache_twenty_concurrent_processes_make_one_api_call(
    api: FakeApi, tmp_path: Path
) -> None:
    api.delay = 1.0
    environment = base_env(tmp_path)
    command = [sys.executable, "-m", "stsvend.cli", "credentials", "--api", api.url, "--role", ROLE]
    processes = [
        subprocess.Popen(command, env=environment, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(20)
    ]
    results = [(p.communicate(timeout=60), p.returncode) for p in processes]

    assert [rc for _, rc in results] == [0] * 20
    outputs = {json.loads(out)["AccessKeyId"] for (out, _), _ in results}
    assert outputs == {"ASIAVENDEDBYFAKEAPI1"}
    assert_no_secret(*(err for (_, err), _ in results))
    assert len(api.calls("POST", "/credentials")) == 1
    cache_dir = tmp_path / "cache" / "stsvend"
    assert len(list(cache_dir.glob("*.json"))) == 1
    assert not list(cache_dir.glob("*.tmp"))


PROBE = """
import sys
from stsvend.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
import json
print(json.dumps({{"rc": rc, "loaded": loaded}}), file=sys.stderr)
"""
# What a hit must not import: AWS's libraries, and the standard library's heavier modules.
HEAVY = ("boto3", "botocore", "urllib3", "json", "re", "enum", "collections", "urllib.parse",
         "ipaddress", "datetime", "pathlib", "hashlib", "contextlib", "argparse", "typing")


def test_cache_hit_imports_no_botocore_and_needs_no_network(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    argv = ["credentials", "--api", api.url, "--role", ROLE]

    def probe(*flags: str) -> tuple[dict[str, Any], str]:
        done = subprocess.run([sys.executable, *flags, "-c", PROBE.format(heavy=HEAVY), *argv],
                              env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60)
        return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout

    miss, first = probe()
    assert miss["rc"] == 0 and {"botocore", "urllib3"} <= set(miss["loaded"])  # a miss's imports
    api.reply("POST", "/credentials", (500, {}, {"Code": "InternalError", "Message": "no"}))
    # -S: without site-packages (and the editable install's start-up imports) the hit still works.
    hit, second = probe("-S")
    assert hit == {"rc": 0, "loaded": []}
    assert second == first
    assert len(api.calls("POST", "/credentials")) == 1


def test_credential_process_output_is_read_by_botocore(
    api: FakeApi, env: dict[str, str], tmp_path: Path
) -> None:
    command = shlex.join([sys.executable, "-m", "stsvend.cli", "credentials",
                          "--api", api.url, "--role", ROLE, "--duration", "900"])
    Path(env["AWS_CONFIG_FILE"]).write_text(f"[profile vend]\ncredential_process = {command}\n")
    session = Session()
    provider = ProcessProvider("vend", lambda: session.full_config)

    credentials = provider.load().get_frozen_credentials()

    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "ASIAVENDEDBYFAKEAPI1", VENDED_SECRET, VENDED_TOKEN
    )
    [call] = api.calls("POST", "/credentials")
    assert json.loads(call.body) == {"role_arn": ROLE, "duration_seconds": 900}


def test_refresh_window_longer_than_the_lifetime_asks_again(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE, "--format", "json"]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--refresh-window", "7200"]) == 0
    assert cli.main([*argv, "--no-cache"]) == 0
    capsys.readouterr()
    assert len(api.calls("POST", "/credentials")) == 3


def test_request_is_sigv4_signed_for_execute_api_and_carries_the_options(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["credentials", "--api", api.url + "/", "--role", ROLE, "--region", "eu-west-1",
                   "--duration", "1200", "--tag", "build-id=42", "--session-name", "deploy-42",
                   "--format", "json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out) == api.routes[("POST", "/credentials")][0][2]

    [call] = api.calls("POST", "/credentials")
    assert json.loads(call.body) == {"role_arn": ROLE, "duration_seconds": 1200,
                                     "tags": {"build-id": "42"}, "session_name": "deploy-42"}
    # Always a proof, naming the API URL's base and bound to this very request.
    proof = decode(call.headers["X-Stsvend-Identity"])
    assert proof["headers"]["X-Stsvend-Server-Id"] == api.url
    assert proof["headers"]["X-Stsvend-Request"] == request_binding("POST", "/credentials", call.body)
    assert "x-stsvend-request;x-stsvend-server-id" in proof["headers"]["Authorization"]
    authorization = call.headers["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={AMBIENT_KEY}/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    # Recompute the signature over what the server received: what was signed was what was sent.
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    lowered = {k.lower(): v for k, v in call.headers.items()}
    request = AWSRequest(
        method="POST", url=api.url + call.path, data=call.body,
        headers={name: lowered[name] for name in signed_names if name != "host"},
    )
    request.context["timestamp"] = lowered["x-amz-date"]
    auth = SigV4Auth(Credentials(AMBIENT_KEY, AMBIENT_SECRET), "execute-api", "eu-west-1")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert authorization.endswith(f"Signature={expected}")


def test_formats(api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    assert cli.main([*argv, "--format", "env"]) == 0
    exports = capsys.readouterr().out
    assert f"export AWS_SECRET_ACCESS_KEY={VENDED_SECRET}\n" in exports
    assert f"export AWS_SESSION_TOKEN={VENDED_TOKEN}\n" in exports
    assert cli.main([*argv, "--format", "process"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"
    }
    assert len(api.calls("POST", "/credentials")) == 1


def test_api_url_from_environment(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STSVEND_API_URL", api.url)
    assert cli.main(["credentials", "--role", ROLE]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"


# -- exec, roles, whoami ----------------------------------------------------------------------

CHILD = """
import json, os, sys
names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
         "AWS_CREDENTIAL_EXPIRATION")
print(json.dumps({n: os.environ.get(n) for n in names}))
sys.exit(int(sys.argv[1]))
"""


def test_exec_env_runs_the_command_with_the_credentials_and_passes_its_exit_code(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    Path(environment["AWS_CONFIG_FILE"]).write_text("[profile base]\nregion = us-east-1\n")
    environment["AWS_PROFILE"] = "base"
    done = run_cli("exec", "--env", "--api", api.url, "--role", ROLE, "--",
                   sys.executable, "-c", CHILD, "7", env=environment)
    assert done.returncode == 7
    seen = json.loads(done.stdout)
    assert seen == {
        "AWS_ACCESS_KEY_ID": "ASIAVENDEDBYFAKEAPI1",
        "AWS_SECRET_ACCESS_KEY": VENDED_SECRET,
        "AWS_SESSION_TOKEN": VENDED_TOKEN,
        "AWS_PROFILE": None,
        "AWS_CREDENTIAL_EXPIRATION": api.routes[("POST", "/credentials")][0][2]["Expiration"],
    }
    assert_no_secret(done.stderr)


@pytest.mark.parametrize(
    ("command", "exit_status", "code"),
    [([], 2, "NoCommand"), (["--"], 2, "NoCommand"),
     (["--", "no-such-command-stsvend-test"], 127, "CommandNotFound")],
)
def test_exec_without_a_runnable_command(
    api: FakeApi, tmp_path: Path, command: list[str], exit_status: int, code: str
) -> None:
    done = run_cli("exec", "--api", api.url, "--role", ROLE, *command, env=base_env(tmp_path))
    assert done.returncode == exit_status
    assert done.stderr.startswith(f"stsvend: {code}: ")


@pytest.mark.parametrize("route", ["roles", "whoami"])
def test_roles_and_whoami_print_the_signed_get_answer(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str], route: str
) -> None:
    body = {"roles": [{"role_arn": ROLE, "max_duration_seconds": 3600}]}
    api.reply("GET", f"/{route}", (200, {}, body))
    assert cli.main([route, "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == body and out.startswith("{\n  ")
    [call] = api.calls("GET", f"/{route}")
    assert "/us-east-1/execute-api/aws4_request" in call.headers["Authorization"]


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "exit_status", "code"),
    [
        (400, {"Code": "InvalidRequest", "Message": "bad role ARN"}, 2, "InvalidRequest"),
        (413, {"Code": "PayloadTooLarge", "Message": "over 16 KiB"}, 2, "PayloadTooLarge"),
        (401, {"Code": "NotAuthenticated", "Message": "no proof"}, 3, "NotAuthenticated"),
        (403, {"Code": "CallerNotAllowed", "Message": "no grant"}, 3, "CallerNotAllowed"),
        (502, {"Code": "AssumeRoleDenied", "Message": "check trust"}, 3, "AssumeRoleDenied"),
        (500, {"Code": "InternalError", "Message": "failed"}, 1, "InternalError"),
    ],
)
def test_service_errors_print_code_and_message_and_exit_distinctly(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str],
    status: int, body: dict[str, str], exit_status: int, code: str,
) -> None:
    api.reply("POST", "/credentials", (status, {}, {**body, "RequestId": "req-9"}))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == exit_status
    out, err = capsys.readouterr()
    assert out == ""
    hint = NOT_AUTHENTICATED_HINT if status == 401 else ""
    assert err == (f"stsvend: {code}: {body['Message']}{hint} (request id req-9)\n"
                   "stsvend: see why: stsvend doctor\n")
    assert_no_secret(err)
    assert not list((Path(env["XDG_CACHE_HOME"]) / "stsvend").glob("*.json"))


def test_503_is_retried_once_per_retry_after(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    busy = (503, {"Retry-After": "0"}, {"Code": "ServiceUnavailable", "Message": "try again"})
    api.reply("POST", "/credentials", busy, (200, {}, vended_answer()))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    assert len(api.calls("POST", "/credentials")) == 2

    api.reply("GET", "/roles", busy)
    assert cli.main(["roles", "--api", api.url]) == 4
    assert capsys.readouterr().err == "stsvend: ServiceUnavailable: try again\n"
    assert len(api.calls("GET", "/roles")) == 2


def test_unreachable_service_exits_4(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert cli.main(["credentials", "--api", f"http://127.0.0.1:{port}", "--role", ROLE]) == 4
    assert capsys.readouterr().err.startswith("stsvend: ServiceUnreachable: ")


def test_answer_without_expiration_is_an_error_that_does_not_echo_secrets(
    api: FakeApi, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {k: v for k, v in vended_answer().items() if k != "Expiration"}
    api.reply("POST", "/credentials", (200, {}, broken))
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("stsvend: InvalidAnswer: ")
    assert_no_secret(err)


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["credentials", "--role", ROLE], "NoApiUrl"),
     (["credentials", "--api", "ftp://example.com", "--role", ROLE], "InvalidApiUrl"),
     (["credentials", "--api", "http://127.0.0.1:1", "--role", ROLE, "--tag", "x"], "InvalidTag"),
     (["whoami"], "NoApiUrl")],
)
def test_usage_errors_exit_2(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], code: str
) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"stsvend: {code}: ")


def test_no_ambient_credentials_exits_3(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert cli.main(["credentials", "--api", api.url, "--role", ROLE]) == 3
    assert capsys.readouterr().err.startswith("stsvend: NoCredentials: no AWS credentials found")
    assert api.received == []


def test_a_profile_that_runs_stsvend_itself_does_not_recurse(
    api: FakeApi, tmp_path: Path
) -> None:
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    command = shlex.join([sys.executable, "-m", "stsvend.cli", "credentials",
                          "--api", api.url, "--role", ROLE])
    Path(environment["AWS_CONFIG_FILE"]).write_text(f"[default]\ncredential_process = {command}\n")
    done = run_cli("credentials", "--api", api.url, "--role", ROLE, env=environment)
    assert done.returncode == 3
    assert "must not use stsvend as its credential_process" in done.stderr
    assert api.received == []


# -- the identity proof against moto with IAM auth on ----------------------------------------


@dataclass(frozen=True)
class MotoUser:
    url: str
    arn: str
    access_key_id: str
    secret_access_key: str


def _moto_post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback moto
        return bytes(response.read())


@pytest.fixture(scope="module")
def moto_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoUser]:
    """A moto server in its own process (auth is process-global there), with one IAM user."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _moto_post(url + "/moto-api/reset-auth", b"100")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        arn = iam.create_user(UserName="ci-runner")["User"]["Arn"]
        key = iam.create_access_key(UserName="ci-runner")["AccessKey"]
        _moto_post(url + "/moto-api/reset-auth", b"0")
        yield MotoUser(url, arn, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def as_moto_user(moto_user: MotoUser, env: dict[str, str],
                 monkeypatch: pytest.MonkeyPatch) -> MotoUser:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_user.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_user.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_user.url)
    return moto_user


def urllib3_poster(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    response = urllib3.PoolManager().request("POST", url, headers=headers, body=body,
                                             redirect=False)
    return response.status, response.data


def decode(proof: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(proof))
    return decoded


def test_proof_is_accepted_by_sts_as_is(as_moto_user: MotoUser) -> None:
    proof = decode(Signer("us-east-1").identity_proof(SERVER_ID, BINDING))
    assert proof["url"] == as_moto_user.url + "/"  # the endpoint botocore resolved, path /
    assert proof["headers"]["X-Stsvend-Server-Id"] == SERVER_ID
    assert proof["headers"]["X-Stsvend-Request"] == BINDING
    assert "x-stsvend-server-id" in proof["headers"]["Authorization"]
    assert "x-stsvend-request" in proof["headers"]["Authorization"]

    status, payload = urllib3_poster(proof["url"], proof["headers"], proof["body"].encode())
    assert status == 200
    assert f"<Arn>{as_moto_user.arn}</Arn>".encode() in payload


@pytest.mark.parametrize("tamper", ["server-id", "binding", "body"])
def test_tampered_proof_is_refused_by_sts(as_moto_user: MotoUser, tamper: str) -> None:
    proof = decode(Signer("us-east-1").identity_proof(SERVER_ID, BINDING))
    headers, body = dict(proof["headers"]), proof["body"]
    if tamper == "server-id":
        headers["X-Stsvend-Server-Id"] = "https://another.example"
    elif tamper == "binding":
        headers["X-Stsvend-Request"] = request_binding("POST", "/credentials", b"{}")
    else:
        body += "&Extra=1"
    status, payload = urllib3_poster(proof["url"], headers, body.encode())
    assert status == 403
    assert b"SignatureDoesNotMatch" in payload


def test_servers_verifier_accepts_the_proof(as_moto_user: MotoUser) -> None:
    proof = Signer("us-east-1").identity_proof(SERVER_ID, BINDING)
    verifier = StsProofVerifier(as_moto_user.url, (SERVER_ID,), "us-east-1", urllib3_poster)
    answer = verifier.verify(proof, BINDING)
    assert (answer.arn, answer.account) == (as_moto_user.arn, as_moto_user.arn.split(":")[4])
    with pytest.raises(NotAuthenticated):
        StsProofVerifier(
            as_moto_user.url, ("https://another.example",), "us-east-1", urllib3_poster
        ).verify(proof, BINDING)
    with pytest.raises(NotAuthenticated, match="another request"):
        verifier.verify(proof, request_binding("GET", "/roles", b""))


def test_whoami_sends_a_proof_the_server_verifies(
    as_moto_user: MotoUser, api: FakeApi, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    verifiers = [StsProofVerifier(as_moto_user.url, (api.url,), "us-east-1", urllib3_poster)]

    def whoami(request: Received) -> Reply:
        try:
            caller = verifiers[-1].verify(
                request.headers.get("X-Stsvend-Identity"),
                request_binding(request.method, request.path, request.body),
            )
        except NotAuthenticated as exc:
            return 401, {}, {"Code": "NotAuthenticated", "Message": exc.message}
        return 200, {}, {"arn": caller.arn, "identity_mode": "sts-proof"}

    api.reply("GET", "/whoami", whoami)
    # Nothing stsvend-specific set: the server id is the API URL's base.
    monkeypatch.delenv("STSVEND_SERVER_ID", raising=False)
    assert cli.main(["whoami", "--api", api.url + "/"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "arn": as_moto_user.arn, "identity_mode": "sts-proof"
    }

    # A server that answers as another server id refuses the proof, and the message says what to
    # check.
    verifiers.append(StsProofVerifier(as_moto_user.url, (api.url + "/other",), "us-east-1", urllib3_poster))
    assert cli.main(["whoami", "--api", api.url]) == 3
    err = capsys.readouterr().err
    assert err.startswith("stsvend: NotAuthenticated: ")
    assert "another server id" in err and "check that" in err and "STSVEND_SERVER_ID" in err


@pytest.mark.parametrize(
    "server_id",
    ["https://attacker.example", "http://127.0.0.1:1", "https://127.0.0.1:{port}", "not a url"],
    ids=["other-host", "other-port", "other-scheme", "malformed"],
)
@pytest.mark.parametrize("where", ["option", "environment"])
def test_a_server_id_for_another_host_is_refused_before_any_request(
    api: FakeApi, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], server_id: str, where: str,
) -> None:
    server_id = server_id.format(port=api.url.rsplit(":", 1)[1])
    options = ["--server-id", server_id] if where == "option" else []
    if where == "environment":
        monkeypatch.setenv("STSVEND_SERVER_ID", server_id)
    for argv in (["whoami"], ["roles"], ["credentials", "--role", ROLE, "--no-cache"]):
        assert cli.main([*argv, "--api", api.url, *options]) == 2
        err = capsys.readouterr().err
        assert err.startswith("stsvend: InvalidServerId: ")
        assert "scheme, host and port" in err
    assert api.received == []


def test_server_id_is_the_api_urls_normalized_base() -> None:
    env: dict[str, str] = {}
    assert server_id_for("https://ABC.execute-api.eu-west-1.amazonaws.com:443/api/", None, env) == (
        "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    )
    assert server_id_for("http://127.0.0.1:8000", None, env) == "http://127.0.0.1:8000"
    assert server_id_for("http://localhost:80", None, env) == "http://localhost"
    # An explicit server id may name the base the API lies under, never an API beside it.
    assert server_id_for("https://h.example/prod/api", "https://H.example:443/prod", env) == (
        "https://h.example/prod"
    )
    assert server_id_for("https://h.example/api", "https://H.example:443/", env) == "https://h.example"


@pytest.mark.parametrize(
    ("api_url", "server_id"),
    [
        ("https://d.example/other-team", "https://d.example/prod"),
        ("https://d.example/prod-evil", "https://d.example/prod"),
        ("https://d.example", "https://d.example/prod"),
        ("https://d.example/prod", "https://d.example/prod/api"),
    ],
)
def test_a_server_id_for_another_api_on_the_same_host_is_refused(api_url: str, server_id: str) -> None:
    """Two APIs mapped under different paths of one custom domain: a proof for one is never handed to
    the other, which could replay it there as the identical request."""
    with pytest.raises(CommandError) as raised:
        server_id_for(api_url, server_id, {})
    assert raised.value.code == "InvalidServerId"
    assert raised.value.exit_status == 2
