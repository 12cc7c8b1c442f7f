"""HTTP to the stsvend API: one request, no redirects and no retries of its own (the caller
retries: stsvend.client.calls), through urllib3, which a cache miss loads with botocore.

Like botocore, it honours HTTP(S)_PROXY / NO_PROXY (never for a loopback API) and AWS_CA_BUNDLE.
A failure to connect raises ConnectionError, no answer in time TimeoutError.
"""

from __future__ import annotations

import os

from stsvend.client.location import is_loopback
from stsvend.client.plain import urlsplit

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the cache hit loads this
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Transport = Callable[[str, str, dict[str, str], bytes | None], "HttpAnswer"]

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 30.0
# An answer larger than this is not one of the API's: it is read no further.
MAX_ANSWER_BYTES = 1 << 20


class HttpAnswer:
    # A plain class: a dataclass or NamedTuple would import dataclasses or typing on every cache hit.
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def urllib3_transport(
    method: str, url: str, headers: dict[str, str], body: bytes | None
) -> HttpAnswer:
    """One request; at most MAX_ANSWER_BYTES + 1 of the answer are read."""
    import urllib3

    options: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        "retries": False,
    }
    if os.environ.get("AWS_CA_BUNDLE"):
        options["ca_certs"] = os.environ["AWS_CA_BUNDLE"]
    proxy = proxy_for(url)
    http = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    try:
        response = http.request(
            method, url, body=body, headers=headers, redirect=False, preload_content=False
        )
        try:
            data = response.read(MAX_ANSWER_BYTES + 1)
        finally:
            response.release_conn()
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise TimeoutError(f"no answer from {url} within {READ_TIMEOUT_SECONDS:.0f}s") from exc
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
        raise ConnectionError(f"cannot connect to {url}") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise ConnectionError(f"the request to {url} failed: {exc}") from exc
    finally:
        http.clear()
    return HttpAnswer(int(response.status), dict(response.headers), bytes(data))


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (http_proxy, https_proxy, no_proxy), if any."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    # A loopback API is called directly: through a proxy, a plain-HTTP proof and the credentials
    # in the answer would leave this machine in clear (NO_PROXY rarely lists 127.0.0.1).
    host = parts.hostname or ""
    if not proxies or is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(parts.scheme)
