"""A fault-injecting HTTP proxy in front of the moto server: canned AWS errors for chosen actions,
and an endpoint that can go away and come back on the same port."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections import defaultdict
from typing import Any

STS_THROTTLE = (
    400,
    "text/xml",
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>f</RequestId></ErrorResponse>",
)
DDB_THROTTLE = (
    400,
    "application/x-amz-json-1.0",
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}',
)


def action_of(headers: Any, body: bytes) -> str:
    target = headers.get("X-Amz-Target", "")
    if target:
        return str(target.rsplit(".", 1)[-1])
    fields = urllib.parse.parse_qs(body.decode(errors="replace"))
    return fields.get("Action", [""])[0]


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
        self.seen: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, action: str, response: tuple[int, str, bytes], times: int) -> None:
        self.faults[action].extend([response] * times)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # no keep-alive: a stopped proxy is really gone

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                action = action_of(self.headers, body)
                proxy.seen.append(action)
                if proxy.faults.get(action):
                    status, content_type, payload = proxy.faults[action].pop(0)
                else:
                    status, content_type, payload = proxy._forward(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def _forward(self, path: str, headers: Any, body: bytes) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("connection",)}
            connection.request("POST", path, body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()
