"""The local stack over real HTTP: one stack for the session (emulator with IAM auth on and request
recording, bootstrapped, grants applied; `chalice local` on a free port), stopped at the end.

`Api` calls the stack's API as one of its identities with an identity proof built by the client's
own signing code, optionally tampered with; every vended answer is registered with the suite-wide
secret guard, and so are the servers' logs when the stack stops.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials

from stsvend.client.location import server_id_for
from stsvend.client.signing import PROOF_HEADER, build_identity_proof, request_binding
from stsvend.local.stack import LocalStack, LocalState, hermetic_environment
from tests.conftest import record_output, record_vended

ROOT = Path(__file__).resolve().parents[2]


def start_stack(state_dir: Path, record_requests: bool) -> LocalStack:
    stack = LocalStack.on_free_ports(ROOT, state_dir, record_requests=record_requests)
    stack.start()
    return stack


def stop_stack(stack: LocalStack) -> None:
    stack.stop()
    for log in (stack.api_log, stack.api_errors_log, stack.emulator.process.log_path):
        if log.exists():
            record_output(log.read_text(encoding="utf-8", errors="replace"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    started = start_stack(tmp_path_factory.mktemp("stack"), record_requests=True)
    try:
        yield started
    finally:
        stop_stack(started)


@pytest.fixture(scope="session")
def state(stack: LocalStack) -> LocalState:
    return stack.state


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def code(self) -> str | None:
        return self.body.get("Code")


Tamper = Callable[[dict[str, Any]], None]


def encode_body(body: dict[str, Any] | None) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


class Api:
    def __init__(self, state: LocalState) -> None:
        self.state = state

    @property
    def server_id(self) -> str:
        """The server id the client derives from the API URL."""
        return server_id_for(self.state.api_url, None, {})

    def proof(
        self,
        identity: str,
        method: str = "GET",
        path: str = "/whoami",
        body: dict[str, Any] | None = None,
        server_id: str | None = None,
        tamper: Tamper | None = None,
        binding: str | None = None,
    ) -> str:
        """A proof by `identity` for the request `method path body` (as `call` sends it), or for
        the request `binding` describes."""
        me = self.state.identities[identity]
        proof = build_identity_proof(
            Credentials(me.access_key_id, me.secret_access_key),
            self.state.region,
            self.state.emulator_url,
            server_id or self.server_id,
            binding or request_binding(method, path, encode_body(body) or b""),
        )
        if tamper is None:
            return proof
        decoded = json.loads(base64.b64decode(proof))
        tamper(decoded)
        return base64.b64encode(json.dumps(decoded).encode()).decode()

    def call(
        self,
        method: str,
        path: str,
        identity: str | None = None,
        body: dict[str, Any] | None = None,
        proof: str | None = None,
        server_id: str | None = None,
        tamper: Tamper | None = None,
    ) -> Answer:
        """Call as `identity` with a proof for this very request, unless `proof` is given."""
        headers = {"Content-Type": "application/json"}
        if proof is None and identity is not None:
            proof = self.proof(identity, method, path, body, server_id, tamper)
        if proof is not None:
            headers[PROOF_HEADER] = proof
        request = urllib.request.Request(
            self.state.api_url + path,
            data=encode_body(body),
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = Answer(response.status, dict(response.headers), json.loads(response.read()))
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, dict(error.headers), json.loads(error.read()))
        record_vended(answer.body)
        return answer

    def credentials(
        self,
        identity: str,
        role: str,
        proof: str | None = None,
        server_id: str | None = None,
        tamper: Tamper | None = None,
        **fields: Any,
    ) -> Answer:
        body = {"role_arn": role, **fields}
        return self.call("POST", "/credentials", identity, body, proof, server_id, tamper)


@pytest.fixture(scope="session")
def api(state: LocalState) -> Api:
    return Api(state)


def aws(state: LocalState, service: str, keys: dict[str, Any]) -> Any:
    """A boto3 client for the emulator, with vended credentials (the API's answer)."""
    return boto3.client(
        service,
        region_name=state.region,
        endpoint_url=state.emulator_url,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys.get("SessionToken"),
    )


def own_keys(state: LocalState, identity: str) -> dict[str, str]:
    me = state.identities[identity]
    return {"AccessKeyId": me.access_key_id, "SecretAccessKey": me.secret_access_key}


def run_checkout_command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command of the checkout (an example, `stsvend ...`), its output given to the secret guard."""
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**hermetic_environment(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    record_output(result.stdout)
    record_output(result.stderr)
    return result
