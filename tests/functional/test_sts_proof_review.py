"""Findings of the review of the `sts-proof` identity mode, each shown against real parts: the
bare moto server of `test_sts_proof` (IAM auth enforced), and the client's transport over real
loopback HTTP with a recording proxy."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.config import Settings
from chalicelib.identity import normalize_server_id
from stsvend.client.location import server_id_for
from stsvend.client.transport import proxy_for, urllib3_transport
from stsvend.errors import EXIT_USAGE, CommandError
from tests.functional.conftest import Stack, iam_identity, settings_env
from tests.functional.test_sts_proof import ProofStack, proof_stack  # noqa: F401 - the fixture


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/x-amz-json-1.0", "application/x-amz-json-1.1", "text/xml"],
)
def test_a_signed_content_type_that_is_not_a_form_is_refused_before_sts(
    proof_stack: ProofStack, content_type: str  # noqa: F811 - the imported fixture
) -> None:
    # The body STS gets is always the GetCallerIdentity form; a caller-signed JSON media type made
    # the STS endpoint fail (moto: HTTP 5xx), which the service reported as its own outage (503):
    # a 5xx any caller could cause at will, that its client then retried.
    proof = proof_stack.proof("/whoami", extra_headers={"Content-Type": content_type})
    answer = proof_stack.call("/whoami", proof)
    assert answer.status == 401, answer.body
    assert answer.body["Code"] == "NotAuthenticated"
    assert "Content-Type" in answer.body["Message"]
    assert proof_stack.sts_calls == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
    ],
)
def test_form_content_types_as_sdks_sign_them_are_accepted(
    proof_stack: ProofStack, content_type: str  # noqa: F811 - the imported fixture
) -> None:
    proof = proof_stack.proof("/whoami", extra_headers={"Content-Type": content_type})
    answer = proof_stack.call("/whoami", proof)
    assert answer.status == 200, answer.body
    assert answer.body["Arn"] == proof_stack.caller_arn


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


@pytest.mark.parametrize(
    ("named", "other"),
    [
        ("https://[2001:db8::1]:8443", "https://[2001:db8::1:8443]"),
        ("http://[::1]:8000", "http://[::1:8000]"),
    ],
)
def test_ipv6_server_ids_keep_their_brackets_so_two_hosts_never_share_one(named: str, other: str) -> None:
    # Without brackets, host [2001:db8::1] port 8443 and host [2001:db8::1:8443] port 443 both
    # became https://2001:db8::1:8443: a client sent to the second handed it a proof valid at the first.
    assert normalize_server_id(named) == named
    assert normalize_server_id(other) == other
    assert server_id_for(named, None, {}) == named
    assert server_id_for(other, None, {}) == other
    with pytest.raises(CommandError) as refused:
        server_id_for(other, named, {})
    assert refused.value.exit_status == EXIT_USAGE
    assert Settings.from_env(
        {**settings_env("http://127.0.0.1:1", mode="sts-proof"), "STSVEND_SERVER_ID": named}
    ).server_ids == (named,)


def test_the_request_event_is_never_logged_even_when_the_environment_asks(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # POWERTOOLS_LOGGER_LOG_EVENT=true (a debugging switch an operator may well flip) made every
    # request event a log line: the caller's session token, its Authorization and its proof with
    # them, on every route and in either identity mode.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    caplog.set_level(logging.DEBUG)
    token = "caller-session-token-must-never-be-logged"
    proof = base64.b64encode(b'{"proof-must-never-be-logged": 1}').decode()
    answer = stack.invoke(
        "GET", "/whoami", identity=iam_identity(),
        headers={"X-Amz-Security-Token": token, "X-Stsvend-Identity": proof},
    )
    assert answer.status == 200, answer.body
    logged = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged
    assert proof not in logged
    assert "/whoami" not in logged  # no event at all
