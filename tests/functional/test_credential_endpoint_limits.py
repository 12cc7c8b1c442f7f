"""The credentials endpoint of `stsvend exec` / `stsvend serve` against what any local user can send:
a request trickled one byte at a time, a flood of idle connections, Host headers with and without
the port (the AWS Common Runtime sends `Host: 127.0.0.1`) and other hosts (DNS rebinding)."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from stsvend.client import credserver
from stsvend.client.credserver import CredentialServer
from stsvend.client.renewal import RenewingCredentials
from stsvend.errors import warn
from tests.functional.fake_api import vended_answer
from tests.functional.test_credserver import get as get_credentials

DEADLINE_SECONDS = 2.0


def answer() -> dict[str, Any]:
    expiration = datetime.now(timezone.utc) + timedelta(hours=1)
    return {"AccessKeyId": "ASIAENDPOINTLIMITS01", "SecretAccessKey": "limits-secret",
            "SessionToken": "limits-token", "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialServer]:
    monkeypatch.setattr(credserver, "REQUEST_TIMEOUT_SECONDS", DEADLINE_SECONDS)
    credentials = RenewingCredentials(answer)
    credentials.current()
    warnings: list[str] = []
    running = CredentialServer(credentials, warnings.append).start()
    try:
        yield running
    finally:
        running.stop()
    assert warnings == []


def get(server: CredentialServer, host: str | None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", "/credentials", skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.putheader("Authorization", server.token)
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
        if response.status == 200:
            assert body["AccessKeyId"] == "ASIAENDPOINTLIMITS01"
        return response.status
    finally:
        connection.close()


def test_the_loopback_host_is_accepted_with_or_without_the_port(server: CredentialServer) -> None:
    assert get(server, f"127.0.0.1:{server.port}") == 200
    assert get(server, "127.0.0.1") == 200  # as awscrt sends it


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:{port}", "127.0.0.1:1", "127.0.0.1:{port}0", "127.0.0.2:{port}",
     "attacker.example:{port}", "127.0.0.1.attacker.example", "127.0.0.1:{port}@attacker.example",
     "", "0x7f.0.0.1", "[::1]:{port}", None],
)
def test_any_other_host_is_refused(server: CredentialServer, host: str | None) -> None:
    assert get(server, None if host is None else host.format(port=server.port)) == 404


def closed_by_the_server(connection: socket.socket) -> bool:
    try:
        return connection.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def test_a_trickled_request_is_closed_at_its_deadline_not_kept_by_each_byte(
    server: CredentialServer,
) -> None:
    """One byte every quarter of the deadline for three deadlines: each recv comes in time, the
    whole request does not."""
    request = (f"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"Authorization: {server.token}\r\n")
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.settimeout(DEADLINE_SECONDS / 4)
    started = time.monotonic()
    closed_after = None
    try:
        for byte in request.encode()[: int(3 * 4)]:
            if closed_by_the_server(connection):
                closed_after = time.monotonic() - started
                break
            try:
                connection.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
        else:
            if closed_by_the_server(connection):
                closed_after = time.monotonic() - started
    finally:
        connection.close()
    assert closed_after is not None, "the server kept a trickled request open for three deadlines"
    assert closed_after >= DEADLINE_SECONDS * 0.9


def server_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("Thread-"))


def test_a_flood_of_idle_connections_holds_a_bounded_number_and_only_until_the_deadline(
    server: CredentialServer,
) -> None:
    before = server_threads()
    flood = []
    try:
        for _ in range(6 * credserver.MAX_CONNECTIONS):
            flood.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        for connection in flood:
            connection.settimeout(0.01)
        refused: set[int] = set()
        waited = time.monotonic()
        # Every connection beyond the bound is closed as soon as it is accepted, not queued: well
        # before the deadline would close it.
        while len(refused) < 5 * credserver.MAX_CONNECTIONS and time.monotonic() - waited < DEADLINE_SECONDS:
            assert server_threads() - before <= credserver.MAX_CONNECTIONS
            refused |= {i for i, c in enumerate(flood) if i not in refused and closed_by_the_server(c)}
        assert len(refused) >= 5 * credserver.MAX_CONNECTIONS
        assert server_threads() - before <= credserver.MAX_CONNECTIONS

        # The flood's sockets stay open on its side; the server lets go of them at the deadline.
        time.sleep(DEADLINE_SECONDS + 0.5)
        assert get(server, f"127.0.0.1:{server.port}") == 200
    finally:
        for connection in flood:
            connection.close()


def test_credentials_server_drops_a_connection_that_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any local user may connect to 127.0.0.1 (the token is checked only on a whole request): a
    connection that never completes its request must not hold a thread and a descriptor forever,
    or a few hundred of them starve the child's SDK of its renewals."""
    monkeypatch.setattr(credserver, "REQUEST_TIMEOUT_SECONDS", 0.5)
    server = CredentialServer(RenewingCredentials(vended_answer), lambda message: None)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
            stalled.sendall(b"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1")
            assert stalled.recv(1024) == b""  # closed by the server, not by this test's timeout
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as whole:
            whole.sendall(f"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          f"Authorization: {server.token}\r\n\r\n".encode())
            assert whole.recv(1024).startswith(b"HTTP/1.0 200 ")
    finally:
        server.stop()


def test_clients_that_reset_their_connection_print_nothing_into_the_childs_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Any local user may connect and reset at once (SO_LINGER 0): socketserver printed a
    traceback into the child's stderr (a build log) for each such connection."""
    server = CredentialServer(RenewingCredentials(vended_answer), warn).start()
    try:
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as reset:
                reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                reset.sendall(b"GET /credentials HTTP/1.0\r\nHost: x\r\n\r\n")
        status, _ = get_credentials(server.url, server.token)
        assert status == 200
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
