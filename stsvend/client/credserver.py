"""`stsvend exec` and `stsvend serve`: a local server of the container-credentials protocol.

The AWS SDKs and the AWS CLI read `AWS_CONTAINER_CREDENTIALS_FULL_URI` (a loopback http URL is
accepted) and send `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header; the answer is
`{AccessKeyId, SecretAccessKey, Token, Expiration}`, fetched again as the SDK's own refresh comes
due. So the child of `stsvend exec` never holds a secret in its environment and keeps working past
the first credentials' hour: the server renews them from a thread of its own ahead of need
(stsvend.client.renewal.BackgroundRenewal) and answers from memory, whatever the API is doing.

The server listens on 127.0.0.1, on a port the OS picks; the token is random per run and compared in
constant time; any other path, method or Host is refused (the Host must name 127.0.0.1, with this
port or without one, as the AWS Common Runtime sends it: a DNS-rebinding page names its own host).
Any local user can connect, so each connection has a deadline for its whole request and the number
served at once is bounded.

The SDKs look elsewhere first, and the child gets an environment in which every step ahead of the
container provider finds nothing (read from each SDK's source; docs/client-exec.md has the table):

- environment keys, under every name an SDK reads (`AWS_*`, `AMAZON_*`, Go's and Ruby's
  `AWS_ACCESS_KEY`/`AWS_SECRET_KEY`), profiles (`AWS_PROFILE`, `AWS_DEFAULT_PROFILE`), web identity
  (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`) and the other container variables are removed;
- the shared credentials file, config file and boto2 config point at files of this run that hold at
  most a region, so no profile, SSO, login, credential_process or static key is found. The
  JavaScript SDK v2 reads `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` only with
  `AWS_SDK_LOAD_CONFIG` set, and `$HOME/.aws/credentials` otherwise: the child has it set;
- the Java SDKs read system properties (`-Daws.accessKeyId`, `-Daws.profile`, ...) ahead of the
  environment, which the JVM takes from `JAVA_TOOL_OPTIONS`, `JDK_JAVA_OPTIONS` and `_JAVA_OPTIONS`
  and launchers from `JAVA_OPTS`, `MAVEN_OPTS`, `GRADLE_OPTS` and the like: a job with a `*OPTS`
  or `*OPTIONS` variable that sets one is refused (`CredentialsElsewhere`), never started with it;
- the JavaScript SDK v2 and the Java SDKs go on down their chain when the endpoint answers with an
  error, to the instance metadata service last: `AWS_EC2_METADATA_DISABLED=true`, so a refused
  renewal never turns into the EC2 instance role's credentials.

`stsvend exec --env` keeps the former behaviour (keys in the environment, no renewal), but the child
starts with at least half of the requested duration ahead.
"""

from __future__ import annotations

import argparse
import configparser
import hmac
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from stsvend import TIMESTAMP_FORMAT
from stsvend.client import api
from stsvend.client.api import (
    EXEC_MARKER,
    RESOLVING_ENV,
    api_url,
    credential_request,
    refuse_recursion,
    resolve_region,
    server_id_for,
)
from stsvend.client.cache import parse_expiration
from stsvend.client.renewal import BackgroundRenewal, RenewingCredentials, check_window
from stsvend.errors import EXIT_UNAVAILABLE, EXIT_USAGE, CommandError

LOOPBACK = "127.0.0.1"
CREDENTIALS_PATH = "/credentials"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTH_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
DEFAULT_DURATION_SECONDS = 3600
# Any local user may connect: a connection that has not sent its whole request (and taken the
# answer) within this is closed, however it trickles its bytes ...
REQUEST_TIMEOUT_SECONDS = 10.0
# ... and at most this many are served at once: one more is closed as soon as it is accepted, so a
# flood takes neither every thread nor every descriptor of the process (the child's, under exec).
MAX_CONNECTIONS = 32
# What would name credentials other than the server's, for any SDK's chain (see the docstring).
_NOT_FOR_THE_CHILD = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_SESSION_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_CREDENTIAL_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # The alternate names the Go, Java v1 and Ruby SDKs read for keys, before the container endpoint.
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AMAZON_ACCESS_KEY_ID", "AMAZON_SECRET_ACCESS_KEY",
    "AMAZON_SESSION_TOKEN",
    RESOLVING_ENV,
)
# The properties that the Java SDKs (v2's SdkSystemSetting and ProfileFileSystemSetting, v1's
# SDKGlobalConfiguration) read for credentials ahead of the container endpoint, or to point that
# endpoint elsewhere. A JVM takes system properties from JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS and
# _JAVA_OPTIONS, and launchers pass on their own variables (JAVA_OPTS, MAVEN_OPTS, GRADLE_OPTS,
# CATALINA_OPTS, ES_JAVA_OPTS, ...): every variable named *OPTS or *OPTIONS is looked at.
_JAVA_CREDENTIAL_PROPERTIES = frozenset(name.lower() for name in (
    "accessKeyId", "secretAccessKey", "secretKey", "sessionToken", "profile", "sharedCredentialsFile",
    "configFile", "webIdentityTokenFile", "roleArn", "roleSessionName", "containerCredentialsPath",
    "containerCredentialsFullUri", "containerAuthorizationToken", "containerAuthorizationTokenFile",
    "containerServiceEndpoint",
))
_JAVA_PROPERTY = re.compile(r"-D\s*aws\.([A-Za-z0-9_]+)(?:=(\S*))?")
_REGION = re.compile(r"^[a-z0-9-]{1,40}$")
# Every signal a caller may send to stop or steer a job; the child receives it instead of stsvend.
_FORWARDED = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGWINCH,
)
_FROM_THE_KEYBOARD = (signal.SIGINT, signal.SIGQUIT)


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
            "Expiration": _rfc3339(current["Expiration"]),
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


def _rfc3339(value: str) -> str:
    expiration = parse_expiration(value)
    assert expiration is not None  # answers are checked when vended
    return expiration.strftime(TIMESTAMP_FORMAT)


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


# -- the child's environment --------------------------------------------------------------------


def child_environment(
    env: Mapping[str, str], server: CredentialServer, files: Path, role: str
) -> dict[str, str]:
    """`env` without other credentials, pointed at the server, with the shared files of this run."""
    child = {k: v for k, v in env.items() if k not in _NOT_FOR_THE_CHILD}
    empty = files / "credentials"
    config = files / "config"
    empty.write_text("", encoding="utf-8")
    region = _profile_region(env)
    config.write_text(f"[default]\nregion = {region}\n" if region else "", encoding="utf-8")
    child.update({
        FULL_URI: server.url,
        AUTH_TOKEN: server.token,
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CREDENTIAL_PROFILES_FILE": str(empty),  # the Java SDK v1's name for that file
        "AWS_CONFIG_FILE": str(config),
        "BOTO_CONFIG": str(empty),
        # The JavaScript SDK v2 reads the two files above only with this set, $HOME/.aws/credentials
        # (ahead of the container endpoint) otherwise.
        "AWS_SDK_LOAD_CONFIG": "1",
        # The JavaScript SDK v2 and the Java SDKs go on down their chain when the endpoint answers
        # with an error (a renewal refused, an outage past expiry): on an EC2 agent the next link,
        # the instance metadata service, would hand them the instance role's credentials.
        "AWS_EC2_METADATA_DISABLED": "true",
        EXEC_MARKER: role,
    })
    return child


def refuse_java_credential_properties(env: Mapping[str, str]) -> None:
    """The Java SDKs read system properties ahead of the environment and the container endpoint
    (and `aws.disableEc2Metadata` over AWS_EC2_METADATA_DISABLED); a JVM the job starts may take
    them from any *OPTS or *OPTIONS variable (see _JAVA_CREDENTIAL_PROPERTIES). Refuse rather than
    start it with them."""
    for variable, text in sorted(env.items()):
        if not variable.upper().endswith(("OPTS", "OPTIONS")):
            continue
        for match in _JAVA_PROPERTY.finditer(text):
            name, value = match.group(1).lower(), (match.group(2) or "").lower()
            if name in _JAVA_CREDENTIAL_PROPERTIES or (name == "disableec2metadata" and value != "true"):
                raise CommandError(
                    "CredentialsElsewhere",
                    f"{variable} sets the Java system property aws.{match.group(1)}, which would let "
                    "the Java SDKs take credentials other than the ones stsvend serves: the job "
                    f"could act as someone else. Remove it from {variable} to run the job under stsvend",
                    EXIT_USAGE,
                )


def _profile_region(env: Mapping[str, str]) -> str | None:
    """The region of the profile the agent runs under, which the child's config file keeps."""
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    path = env.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    section = "default" if profile == "default" else f"profile {profile}"
    region = parser.get(section, "region", fallback="").strip()
    return region if _REGION.match(region) else None


# -- commands -----------------------------------------------------------------------------------


def refuse_nesting(env: Mapping[str, str]) -> None:
    role = env.get(EXEC_MARKER)
    if role:
        raise CommandError(
            "NestedExec",
            f"already inside 'stsvend exec' for {role}: its child has that role's credentials, not "
            f"the agent's, so a nested exec or serve would ask as the vended role. Run it outside, "
            f"or unset {EXEC_MARKER} if that is what you mean",
            EXIT_USAGE,
        )


def _renewing(args: argparse.Namespace) -> RenewingCredentials:
    env = os.environ
    refuse_recursion(env)
    if api._oidc_requested(args):
        from stsvend.client import oidc  # a CI job's token: read again for every renewal

        oidc.requested(args)
        check_window(args.refresh_window, args.duration)
        renewing = RenewingCredentials(oidc.vend_again(args, env), args.refresh_window, warn=api.warn)
        renewing.current()
        return renewing
    url = api_url(args.api, env)
    server_id = server_id_for(url, args.server_id, env)
    request = credential_request(args)
    check_window(args.refresh_window, args.duration)
    credentials = RenewingCredentials.for_request(
        url, resolve_region(args.region, url, env), env, request, server_id, args.refresh_window,
        warn=api.warn, source_profile=args.source_profile,
    )
    credentials.current()  # fail before anything starts if the role cannot be had
    return credentials


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args.argv = argv
    if args.env:
        # The child keeps its keys for its whole life: it must start with most of that life ahead.
        duration = args.duration or DEFAULT_DURATION_SECONDS
        window = args.refresh_window
        if window is None or window >= 0:  # a negative one is refused with the cache's message
            args.refresh_window = max(window or 0, duration // 2)
        return _exec_env(args)
    status = _exec_served(args, argv)
    if status < 0:
        # The child was killed by a signal: end the same way, so whoever waits sees that signal.
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


def _exec_env(args: argparse.Namespace) -> int:
    refuse_nesting(os.environ)
    refuse_java_credential_properties(os.environ)
    return api.cmd_exec(args)


def _exec_served(args: argparse.Namespace, argv: list[str]) -> int:
    refuse_nesting(os.environ)
    refuse_java_credential_properties(os.environ)
    if not argv:
        raise CommandError("NoCommand", "usage: stsvend exec --role ARN -- CMD [ARG...]", EXIT_USAGE)
    server = CredentialServer(_renewing(args), api.warn).start()
    files = Path(tempfile.mkdtemp(prefix="stsvend-exec-"))
    try:
        environment = child_environment(os.environ, server, files, args.role)
        return _run_child(argv, environment)
    finally:
        server.stop()
        shutil.rmtree(files, ignore_errors=True)


def _run_child(argv: list[str], environment: dict[str, str]) -> int:
    """Run the command with signals forwarded; its exit status, or minus the signal that ended it."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []
    terminal = _controlling_terminal()

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum in _FROM_THE_KEYBOARD and _in_the_foreground(terminal):
            return  # Ctrl-C, Ctrl-\: the terminal sent it to the child too (same process group)
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            child = subprocess.Popen(argv, env=environment)
        except FileNotFoundError:
            raise CommandError("CommandNotFound", f"{argv[0]}: not found", 127) from None
        except OSError as exc:
            raise CommandError("CannotRun", f"{argv[0]}: {exc.strerror or exc}", 126) from None
        for signum in pending:
            child.send_signal(signum)
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if terminal is not None:
            os.close(terminal)


def _controlling_terminal() -> int | None:
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # no terminal: a CI runner, a service


def _in_the_foreground(terminal: int | None) -> bool:
    if terminal is None:
        return False
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    refuse_nesting(os.environ)
    env_file = _ExportFile.create(args.env_file) if args.env_file else None
    if env_file is None:
        _refuse_a_stdout_others_can_read()
    try:
        server = CredentialServer(_renewing(args), api.warn).start()
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
