"""Child servers of the local stack: started in their own process group, logged to a file, waited
for with a bound, and stopped as a group (terminate, then kill after a timeout)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from stsvend.errors import CommandError

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_SECONDS = 5.0
_LOG_TAIL_CHARS = 2000


class StackError(CommandError):
    """The local stack cannot start or keep running; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("LocalStackError", message)


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(host: str, port: int, what: str, variable: str) -> None:
    """Fail early and clearly when `port` is taken, instead of a server dying with a traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a previous run in TIME_WAIT do not block a new listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise StackError(
                    f"port {port} on {host} is already in use, so the {what} cannot start there;"
                    f" stop what is using it or choose another port with {variable}=PORT"
                ) from None
            raise StackError(f"cannot bind {host}:{port} for the {what}: {exc}") from None


def _private_log(path: Path) -> BinaryIO:
    """A log file only its owner can read, emptied; an existing one is tightened first."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "wb")


def make_private(directory: Path) -> None:
    """`directory` and everything under it for its owner only: directories 0700, files 0600, also
    when they were made looser before (symbolic links are left alone, not followed)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for parent, directories, files in os.walk(directory):
        for name in directories:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


class ManagedProcess:
    """One server process. Its output goes to `log_path` (its stderr to `errors_path` when given, so
    that a line written to one stream never splits a line of the other); it leads its own process
    group, so a Ctrl-C in the terminal reaches only the stack, which then stops the servers itself."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
        errors_path: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.errors_path = errors_path
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            log = files.enter_context(_private_log(self.log_path))
            errors = files.enter_context(_private_log(self.errors_path)) if self.errors_path else None
            self._process = subprocess.Popen(
                self._argv,
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if errors is None else errors,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout)
        self._process = None

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    def log_tail(self) -> str:
        text = ""
        for path in (self.log_path, self.errors_path):
            try:
                text += path.read_text(encoding="utf-8", errors="replace") if path else ""
            except OSError:
                pass
        return text[-_LOG_TAIL_CHARS:]


def wait_until(
    ready: Callable[[], bool],
    process: ManagedProcess,
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Poll `ready` until it holds; fail if the process exits first or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        if not process.running:
            raise StackError(
                f"the {process.name} exited (code {process.exit_code()}) before it was ready;"
                f" its log ({process.log_path}) ends with:\n{process.log_tail()}"
            )
        if ready():
            return
        if time.monotonic() >= deadline:
            raise StackError(
                f"the {process.name} was not ready after {timeout:.0f} s; its log"
                f" ({process.log_path}) ends with:\n{process.log_tail()}"
            )
        time.sleep(interval)
