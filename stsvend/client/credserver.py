"""The credentials of `stsvend exec` and `stsvend serve`: a local server of the container-credentials
protocol, and the `serve` command.

The AWS SDKs and the AWS CLI read `AWS_CONTAINER_CREDENTIALS_FULL_URI` (a loopback http URL is
accepted) and send `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header; the answer is
`{AccessKeyId, SecretAccessKey, Token, Expiration}`, fetched again as the SDK's own refresh comes
due. So the child of `stsvend exec` (stsvend.client.exec) never holds a secret in its environment
and keeps working past the first credentials' hour: the server renews them from a thread of its own
ahead of need (stsvend.client.renewal.BackgroundRenewal) and answers from memory, whatever the API
is doing.

The server listens on 127.0.0.1, on a port the OS picks; the token is random per run and compared in
constant time; any other path, method or Host is refused (the Host must name 127.0.0.1, with this
port or without one, as the AWS Common Runtime sends it: a DNS-rebinding page names its own host).
Any local user can connect, so each connection has a deadline for its whole request and the number
served at once is bounded.

`stsvend serve` runs the server for local tools until interrupted and prints the two variables
(to a new private file with `--env-file`, never to a file others can read).
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import os
import secrets
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from stsvend.client.cache import rfc3339
from stsvend.client.location import api_url, resolve_region, server_id_for
from stsvend.client.reentry import refuse_nesting, refuse_recursion
from stsvend.client.renewal import BackgroundRenewal, RenewingCredentials, check_window
from stsvend.client.request import credential_request, oidc_requested
from stsvend.errors import EXIT_UNAVAILABLE, EXIT_USAGE, CommandError, warn

LOOPBACK = "127.0.0.1"
CREDENTIALS_PATH = "/credentials"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTH_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
# Any local user may connect: a connection that has not sent its whole request (and taken the
# answer) within this is closed, however it trickles its bytes ...
REQUEST_TIMEOUT_SECONDS = 10.0
# ... and at most this many are served at once: one more is closed as soon as it is accepted, so a
# flood takes neither every thread nor every descriptor of the process (the child's, under exec).
MAX_CONNECTIONS = 32


class CredentialServer:
    """The container-credentials endpoint on 127.0.0.1, served from a thread until `stop()`; the
    credentials are renewed from another thread (`BackgroundRenewal`) from `start()` on."""

    def __init__(self, credentials: RenewingCredentials, warn: Callable[[str], None]) -> None:
        self.token = secrets.token_urlsafe(32)
        self._renewal = BackgroundRenewal(credentials, warn)
        self._httpd = _Server((LOOPBACK, 0), _handler(self), warn)
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}{CREDENTIALS_PATH}"
        self._hosts = (LOOPBACK, f"{LOOPBACK}:{self.port}")
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.2,), daemon=True)

    def start(self) -> CredentialServer:
        self._renewal.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._renewal.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def answer(self, path: str, host: str | None, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for a GET. Failures are reported by the renewal, once; not here
        for each request."""
        if not hmac.compare_digest((authorization or "").encode(), self.token.encode()):
            return 401, _error("NotAuthenticated", f"send the {AUTH_TOKEN} value as Authorization")
        if host not in self._hosts or path != CREDENTIALS_PATH:
            return 404, _error("NotFound", f"credentials are served at {self.url} only")
        try:
            current = self._renewal.answer()
        except CommandError as exc:
            status = 503 if exc.exit_status == EXIT_UNAVAILABLE else 502
            return status, _error(exc.code, exc.message)
        return 200, {
            "AccessKeyId": current["AccessKeyId"],
            "SecretAccessKey": current["SecretAccessKey"],
            "Token": current["SessionToken"],
            "Expiration": rfc3339(current["Expiration"]),
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], warn: Callable[[str], None]
    ) -> None:
        super().__init__(address, handler)
        self._warn = warn
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if one of MAX_CONNECTIONS is free; else it is closed now."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not socketserver's traceback, on the child's stderr; nothing at all for a
        client that went away or stalled, which any local user can cause at will."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self._warn(f"the credentials server could not answer a request: {type(error).__name__}")


class _DeadlineReader(io.RawIOBase):
    """A connection's bytes until `deadline` (time.monotonic()): each read waits at most for the
    time left, so the whole request has one deadline, not one per recv."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        super().__init__()
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"Code": code, "Message": message}


def _handler(server: CredentialServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "stsvend"
        sys_version = ""
        timeout = REQUEST_TIMEOUT_SECONDS

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # the socket's own file: closed, or the socket would outlive the request
            deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS
            self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

        def do_GET(self) -> None:
            status, body = server.answer(
                self.path, self.headers.get("Host"), self.headers.get("Authorization")
            )
            self._reply(status, body)

        def _refuse(self) -> None:
            self._reply(405, _error("MethodNotAllowed", "only GET is served"))

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: the child's stderr is the user's."""

    return Handler


# -- serve ---------------------------------------------------------------------------------------


def renewing(args: argparse.Namespace) -> RenewingCredentials:
    """The credentials `exec` and `serve` hand out, vended now (a role that cannot be had fails
    before anything starts) and renewed before they expire."""
    env = os.environ
    refuse_recursion(env)
    if oidc_requested(args):
        from stsvend.client import oidc  # a CI job's token: read again for every renewal

        oidc.requested(args)
        check_window(args.refresh_window, args.duration)
        credentials = RenewingCredentials(oidc.vend_again(args, env), args.refresh_window, warn=warn)
    else:
        url = api_url(args.api, env)
        server_id = server_id_for(url, args.server_id, env)
        request = credential_request(args)
        check_window(args.refresh_window, args.duration)
        credentials = RenewingCredentials.for_request(
            url, resolve_region(args.region, url, env), env, request, server_id, args.refresh_window,
            warn=warn, source_profile=args.source_profile,
        )
    credentials.current()
    return credentials


def cmd_serve(args: argparse.Namespace) -> int:
    refuse_nesting(os.environ)
    env_file = _ExportFile.create(args.env_file) if args.env_file else None
    if env_file is None:
        _refuse_a_stdout_others_can_read()
    try:
        server = CredentialServer(renewing(args), warn).start()
    except BaseException:
        if env_file is not None:
            env_file.remove()
        raise
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, stopping) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        exports = f"export {FULL_URI}={server.url}\nexport {AUTH_TOKEN}={server.token}\n"
        if env_file is not None:
            env_file.write(exports)
            where = f"; the variables are in {env_file.path} (only you can read it: . {env_file.path})"
        else:
            sys.stdout.write(exports)
            sys.stdout.flush()
            where = ""
        print(
            f"stsvend: serving credentials for {args.role} at {server.url} until interrupted{where}; "
            "a client uses them only if it finds no other credentials first (environment keys, "
            "AWS_PROFILE, keys in the shared credentials or config file)",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.stop()
        if env_file is not None:
            env_file.remove()
    return 0


def _refuse_a_stdout_others_can_read() -> None:
    """`serve > FILE` under the usual umask makes FILE 0644: the token in it would let any local
    user fetch the role's credentials. A terminal, a pipe or a file only this user can read is fine."""
    try:
        info = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return  # no stdout to write to: nothing is written
    if stat.S_ISREG(info.st_mode) and (info.st_mode & 0o077 or info.st_uid != os.geteuid()):
        raise CommandError(
            "TokenWouldLeak",
            f"stdout is a file others can read (mode {stat.S_IMODE(info.st_mode):04o}) and the export "
            "lines hold the endpoint's token: use --env-file PATH, which serve creates for you alone",
            EXIT_USAGE,
        )


class _ExportFile:
    """`serve --env-file PATH`: a new file (never an existing one, never through a symbolic link),
    readable by its owner only, removed when serve stops if it is still the file serve made."""

    def __init__(self, path: str, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._identity = _identity(os.fstat(descriptor))

    @classmethod
    def create(cls, path: str) -> _ExportFile:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            descriptor = os.open(path, flags, 0o600)
        except FileExistsError:
            raise CommandError(
                "EnvFileExists",
                f"{path} exists: --env-file makes a new file (remove it, or name another path)",
                EXIT_USAGE,
            ) from None
        except OSError as exc:
            raise CommandError("CannotWrite", f"{path}: {exc.strerror or exc}", EXIT_USAGE) from None
        return cls(path, descriptor)

    def write(self, text: str) -> None:
        data = text.encode()
        while data:
            data = data[os.write(self._descriptor, data):]
        os.fsync(self._descriptor)

    def remove(self) -> None:
        try:
            if _identity(os.stat(self.path, follow_symlinks=False)) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass  # gone already, or its directory is: nothing of ours is left to remove
        finally:
            os.close(self._descriptor)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino
