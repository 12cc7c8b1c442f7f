"""A fake stsvend API on loopback for the client's tests: real HTTP, answering each route from a
queue of replies, recording what it received. Also the environment those tests run the client in
(an ambient key in the environment, empty AWS files, a private cache) and the secrets that must
never be printed.

Test modules import the `api` and `env` fixtures from here (tests/functional/conftest.py
registers `api` for every functional test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stsvend.client import calls

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::222222222222:role/deployer"
AMBIENT_KEY = "AKIAAMBIENTCALLER001"
AMBIENT_SECRET = "ambient-secret-must-never-be-printed"
VENDED_SECRET = "vended-secret-must-never-reach-stderr"
VENDED_TOKEN = "vended-token-must-never-reach-stderr"


def vended_answer() -> dict[str, Any]:
    expiration = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    return {
        "Version": 1,
        "AccessKeyId": "ASIAVENDEDBYFAKEAPI1",
        "SecretAccessKey": VENDED_SECRET,
        "SessionToken": VENDED_TOKEN,
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "AssumedRoleArn": "arn:aws:sts::222222222222:assumed-role/deployer/ci",
        "RoleSessionName": "ci",
        "SourceIdentity": "ci",
        "RequestId": "req-1",
    }


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], Any]
Route = Callable[[Received], Reply]


@dataclass
class FakeApi:
    """Answers each route from a queue of replies (the last one repeats), counting what it got."""

    url: str = ""
    routes: dict[tuple[str, str], list[Reply | Route]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, method: str, path: str, *replies: Reply | Route) -> None:
        self.routes[(method, path)] = list(replies)

    def calls(self, method: str, path: str) -> list[Received]:
        return [r for r in self.received if (r.method, r.path) == (method, path)]

    def handle(self, request: Received) -> Reply:
        with self.lock:
            self.received.append(request)
            queue = self.routes.get((request.method, request.path))
            if not queue:
                return 404, {}, {"message": "Missing Authentication Token"}
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
        time.sleep(self.delay)  # lets concurrent callers pile up behind the first
        return reply(request) if callable(reply) else reply


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            status, headers, body = api.handle(request)
            raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            try:
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                # The client stops reading an answer over its size limit and hangs up; the server's
                # report of that would land in the stderr the test is checking.
                pass

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(fake: FakeApi) -> Iterator[FakeApi]:
    """`fake` on a free loopback port (its `url`) until the block ends; then nothing listens there."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.reply("POST", "/credentials", (200, {"Cache-Control": "no-store"}, vended_answer()))
    with serving(fake):
        yield fake


# -- environment ------------------------------------------------------------------------------


def base_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: ambient key in env vars, empty AWS config, cache under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env.update(
        AWS_ACCESS_KEY_ID=AMBIENT_KEY,
        AWS_SECRET_ACCESS_KEY=AMBIENT_SECRET,
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    return env


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """base_env applied to this process, for in-process runs of the CLI."""
    values = base_env(tmp_path)
    for name in list(os.environ):
        if name.startswith(("AWS_", "STSVEND_")):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(calls, "DEFAULT_RETRY_AFTER_SECONDS", 0.0)
    return values


def run_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stsvend.cli", *argv],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (AMBIENT_SECRET, VENDED_SECRET, VENDED_TOKEN):
            assert secret not in text


def cached_entries(environment: dict[str, str]) -> list[Path]:
    """The answers in the credential cache of `environment` (base_env's)."""
    return list((Path(environment["XDG_CACHE_HOME"]) / "stsvend").glob("*.json"))
