"""Which requests go through the proxy the environment names: a plain-HTTP API on loopback never
(the identity proof and the vended secret would cross the network in clear), an HTTPS API elsewhere
still does. The client's transport over real loopback HTTP, with a recording proxy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stsvend.client.transport import proxy_for, urllib3_transport


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with `{}` and records the request line and headers it got."""

    seen: list[tuple[str, dict[str, str]]]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((self.requestline, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _serve() -> tuple[ThreadingHTTPServer, list[tuple[str, dict[str, str]]]]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


Seen = list[tuple[str, dict[str, str]]]


@pytest.fixture
def api_and_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Seen, Seen]]:
    """A loopback API and a proxy the environment names (with no NO_PROXY), both recording."""
    api, api_seen = _serve()
    proxy, proxy_seen = _serve()
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy_url)
    monkeypatch.setenv("https_proxy", proxy_url)
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", proxy_url, api_seen, proxy_seen
    finally:
        for server in (api, proxy):
            server.shutdown()
            server.server_close()


def test_a_plain_http_loopback_api_is_never_called_through_a_proxy(
    api_and_proxy: tuple[str, str, Seen, Seen],
) -> None:
    # Plain HTTP is allowed only for an API on this machine, where nothing can listen in. Through
    # a proxy from the environment, the proof (replayable for 5 minutes) and the vended secret
    # would cross the network in clear, and the proxy could send them anywhere.
    api_url, _proxy_url, api_seen, proxy_seen = api_and_proxy
    answer = urllib3_transport(
        "GET", api_url + "/whoami", {"X-Stsvend-Identity": "proof-for-this-api"}, None
    )
    assert answer.status == 200
    assert proxy_seen == []
    ((request_line, headers),) = api_seen
    assert request_line.startswith("GET /whoami ")
    assert headers["x-stsvend-identity"] == "proof-for-this-api"


def test_an_https_api_elsewhere_still_goes_through_the_environments_proxy(
    api_and_proxy: tuple[str, str, Seen, Seen],
) -> None:
    _api_url, proxy_url, _api_seen, _proxy_seen = api_and_proxy
    remote = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/whoami"
    assert proxy_for(remote) == proxy_url
    assert proxy_for("http://localhost:8000/whoami") is None
