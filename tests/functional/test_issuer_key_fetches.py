"""How the OIDC route fetches an issuer's discovery document and JWKS (chalicelib.oidc.verify.http_get),
against real HTTP servers on loopback: only the configured location is read (no redirect followed, no
proxy consulted), only a 200 answer of at most MAX_DOCUMENT_BYTES within the deadline is taken, and
any failure, a broken answer included, is a FetchError (the route's 503), never an unexpected error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.oidc import verify
from chalicelib.oidc.verify import MAX_DOCUMENT_BYTES, FetchError, http_get

JWKS = b'{"keys": []}'


class Server:
    """A loopback HTTP server whose paths misbehave on purpose; it records every path it is asked."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.dripped_all: list[str] = []  # paths whose whole drip was sent
        self.cut: list[str] = []  # paths whose drip the client cut off
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requested.append(self.path)
                if self.path == "/jwks":
                    self._answer(200, JWKS)
                elif self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/jwks")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/missing":
                    self._answer(404, b"{}")
                elif self.path == "/big":
                    self._answer(200, b" " * MAX_DOCUMENT_BYTES + JWKS)
                elif self.path == "/trickle":
                    # Each piece within the read timeout, the whole past the deadline.
                    self.send_response(200)
                    self.send_header("Content-Length", str(200 * 10))
                    self.end_headers()
                    for _ in range(10):
                        self.wfile.write(b" " * 200)
                        self.wfile.flush()
                        time.sleep(0.15)
                elif self.path in ("/drip-headers", "/drip-body"):
                    # One byte at a time, each well within the read timeout, for far longer than the
                    # deadline: in the headers (before any status check could end it) or the body.
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        if self.path == "/drip-body":
                            self.wfile.write(b"Content-Length: 200\r\n\r\n")
                        for _ in range(200):
                            self.wfile.write(b"X-Drip: 1\r\n"[:1] if self.path == "/drip-headers" else b" ")
                            self.wfile.flush()
                            time.sleep(0.02)
                        server.dripped_all.append(self.path)
                    except OSError:
                        server.cut.append(self.path)
                elif self.path == "/garbage":
                    self.wfile.write(b"SURPRISE, NOT HTTP\r\n\r\n")
                    self.wfile.flush()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


@pytest.fixture
def silent() -> Iterator[str]:
    """A listener that accepts and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_the_document_at_the_location_is_read(server: Server) -> None:
    assert http_get(server.url + "/jwks") == JWKS
    assert server.requested == ["/jwks"]


def test_a_redirect_is_not_followed(server: Server) -> None:
    with pytest.raises(FetchError, match="302"):
        http_get(server.url + "/moved")
    assert server.requested == ["/moved"]


def test_an_answer_other_than_200_is_refused(server: Server) -> None:
    with pytest.raises(FetchError, match="404"):
        http_get(server.url + "/missing")


def test_a_document_over_the_cap_is_refused(server: Server) -> None:
    with pytest.raises(FetchError, match=f"more than {MAX_DOCUMENT_BYTES} bytes"):
        http_get(server.url + "/big")


def test_a_body_that_trickles_past_the_deadline_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "FETCH_TIMEOUT_SECONDS", 0.4)  # deadline 0.8 s, the body takes 1.5 s
    with pytest.raises(FetchError, match="too slow"):
        http_get(server.url + "/trickle")


@pytest.mark.parametrize("path", ["/drip-headers", "/drip-body"])
def test_a_server_that_drips_bytes_is_cut_off_at_the_deadline(
    server: Server, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Each byte arrives within the read timeout, so only the deadline can end the exchange: it
    does, in the headers too, and the connection is shut before the server has sent its drip."""
    monkeypatch.setattr(verify, "FETCH_TIMEOUT_SECONDS", 0.2)  # deadline 0.4 s; the drip takes 4 s
    with pytest.raises(FetchError, match="too slow"):
        http_get(server.url + path)
    for _ in range(300):  # the server notices the shut connection on its next write
        if server.cut or server.dripped_all:
            break
        time.sleep(0.02)
    assert (server.cut, server.dripped_all) == ([path], [])


def test_a_server_that_never_answers_times_out(silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "FETCH_TIMEOUT_SECONDS", 0.3)
    with pytest.raises(FetchError, match="timed out"):
        http_get(silent + "/jwks")


def test_an_answer_that_is_not_http_is_a_fetch_error(server: Server) -> None:
    with pytest.raises(FetchError):
        http_get(server.url + "/garbage")


def test_no_proxy_is_consulted(server: Server, silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment names a proxy that would hang: the fetch goes to the location itself.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, silent)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert http_get(server.url + "/jwks") == JWKS


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example/jwks",  # plain HTTP off loopback
        "http://10.0.0.1:80/jwks",
        "http://user@127.0.0.1:1/jwks",  # userinfo before a loopback address
        "https://user@issuer.example/jwks",
        "ftp://127.0.0.1/jwks",
        "file:///etc/passwd",
    ],
)
def test_a_location_outside_https_or_loopback_is_never_contacted(url: str) -> None:
    with pytest.raises(FetchError, match="refusing to fetch"):
        http_get(url)


def test_inside_lambda_a_loopback_location_is_never_fetched(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Lambda, loopback is the Runtime API (AWS_LAMBDA_RUNTIME_API): a plain-HTTP issuer there
    (the local stack's form) is refused before any connection, whatever the grants table says."""
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", server.url[len("http://"):])
    with pytest.raises(FetchError, match="refusing"):
        http_get(server.url + "/2018-06-01/runtime/invocation/next")
    assert server.requested == []
