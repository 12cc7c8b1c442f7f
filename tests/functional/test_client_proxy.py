"""The client and the environment's HTTP proxy (HTTP(S)_PROXY, NO_PROXY): honoured for a remote API,
never for one on loopback, where a proxy would carry a plain-HTTP proof and the answer's
credentials off the machine in clear, even without NO_PROXY. A real proxy listener on loopback
records whatever reaches it; the fake API of tests/functional/fake_api.py answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stsvend import cli
from stsvend.client.transport import proxy_for
from tests.functional.fake_api import (
    ROLE,
    FakeApi,
)


class ProxyListener:
    """An HTTP proxy on loopback that records every request it receives and forwards none."""

    def __init__(self) -> None:
        self.received: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                listener.received.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ProxyListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyListener]:
    with ProxyListener() as listener:
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, listener.url)
        yield listener


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_never_proxied_even_without_no_proxy(
    api: FakeApi, env: dict[str, str], proxy: ProxyListener, host: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = api.url.replace("127.0.0.1", host)
    assert cli.main(["credentials", "--api", url, "--role", ROLE, "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    assert proxy.received == []
    assert len(api.calls("POST", "/credentials")) == 1


def test_a_remote_https_api_still_goes_through_the_proxy(proxy: ProxyListener) -> None:
    # The control: the environment's proxy is honoured where it may be.
    assert proxy_for("https://abc.execute-api.eu-west-1.amazonaws.com/api") == proxy.url
    assert proxy_for("http://127.0.0.1:8000") is None
    assert proxy_for("http://[::1]:8000") is None
