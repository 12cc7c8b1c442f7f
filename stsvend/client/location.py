"""Where the stsvend API is: its URL (`--api`, else `STSVEND_API_URL`), the server id identity
proofs name (its base URL, or `--server-id` / `STSVEND_SERVER_ID` covering it) and the region
signed for (`--region`, else the one in an `ID.execute-api.REGION.amazonaws.com` URL, else
`AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1). Bad settings are usage errors (exit 2).

The cache hit reads the URL and the server id: nothing here imports `re`, `ipaddress` or
`urllib.parse` on that path (stsvend.client.plain stands in for urlsplit).
"""

from __future__ import annotations

from stsvend.client.plain import urlsplit
from stsvend.errors import EXIT_USAGE, CommandError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the cache hit loads this
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_REGION = "us-east-1"
_EXECUTE_API_HOST = r"^[a-z0-9-]+\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$"


def api_url(option: str | None, env: Mapping[str, str]) -> str:
    raw = (option or env.get("STSVEND_API_URL") or "").strip()
    if not raw:
        raise CommandError(
            "NoApiUrl", "no stsvend API URL: pass --api URL or set STSVEND_API_URL", EXIT_USAGE
        )
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        valid = False
    # urlsplit drops CR, LF and TAB silently; the URL itself goes on into headers and config lines.
    if any(c.isspace() or not c.isprintable() for c in raw):
        valid = False
    if not valid or parts.query or parts.fragment or parts.username or parts.password:
        raise CommandError(
            "InvalidApiUrl",
            f"the API URL must be http(s)://host[:port][/stage] without query: {raw!r}",
            EXIT_USAGE,
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        # Credentials come back in the answer: plain HTTP only where nothing can listen in.
        raise CommandError(
            "InvalidApiUrl", f"the API URL must be https unless it is on this machine: {raw!r}", EXIT_USAGE
        )
    return raw.rstrip("/")


def server_id_for(url: str, option: str | None, env: Mapping[str, str]) -> str:
    """The server id a proof names: the API's base URL, `scheme://host[:port][/prefix]`.

    An explicit one (`--server-id`, else `STSVEND_SERVER_ID`) is used only if it names the same
    scheme, host and port as the API URL and the API lies at or under its path: a proof handed to
    another host, or to another API mapped beside it on one domain, could be replayed there.
    """
    derived = _base_url(url)
    raw = (option or env.get("STSVEND_SERVER_ID") or "").strip()
    if not raw:
        assert derived is not None  # api_url checked the URL
        return derived
    explicit = _base_url(raw)
    if explicit is None or derived is None or not _covers(explicit, derived):
        raise CommandError(
            "InvalidServerId",
            f"the server id {raw!r} (--server-id or STSVEND_SERVER_ID) must have the API URL's "
            f"scheme, host and port ({_origin(derived or url)}) and a path the API URL starts with; "
            "unset it to use the API URL's own",
            EXIT_USAGE,
        )
    return explicit


def _covers(server_id: str, api_base: str) -> bool:
    """The API at `api_base` is the server `server_id` names: the same origin, at or under its path."""
    return api_base == server_id or (
        _origin(server_id) == _origin(api_base) and api_base.startswith(server_id.rstrip("/") + "/")
    )


def _base_url(raw: str) -> str | None:
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return None
    default = 80 if parts.scheme == "http" else 443
    host = parts.hostname.lower()
    # An IPv6 literal keeps its brackets: without them `[a::1]:8443` and `[a::1:8443]` look alike.
    host = f"[{host}]" if ":" in host else host
    netloc = host + (f":{port}" if port is not None and port != default else "")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    octets = host.split(".")
    if len(octets) == 4 and all(o.isascii() and o.isdigit() and len(o) <= 3 for o in octets):
        # A dotted IPv4 literal (the local stack's 127.0.0.1), read without importing ipaddress;
        # leading zeros, which ipaddress refuses, go to it below.
        if all(o == "0" or (o[0] != "0" and int(o) <= 255) for o in octets):
            return octets[0] == "127"
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_region(option: str | None, url: str, env: Mapping[str, str]) -> str:
    if option:
        return option
    import re  # a miss, or another command: a cache hit resolves no region

    match = re.match(_EXECUTE_API_HOST, urlsplit(url).hostname or "")
    if match:
        return match.group(1)
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
