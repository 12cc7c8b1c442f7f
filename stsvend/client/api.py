"""The client side of `stsvend`: `credentials`, `exec`, `roles` and `whoami` (docs/design.md section 6).

Requests to the API are SigV4-signed (service `execute-api`) with the ambient AWS credentials, so
they pass API Gateway's AWS_IAM auth, and carry the `X-Stsvend-Identity` proof for servers in
`sts-proof` mode: a signed sts:GetCallerIdentity naming the server (its base URL, derived from the
API URL) and the request it travels with. The region signed for is `--region`,
else the one in an `ID.execute-api.REGION.amazonaws.com` URL, else `AWS_REGION` /
`AWS_DEFAULT_REGION`, else us-east-1. The API URL is `--api`, else `STSVEND_API_URL`.

Credentials are cached as `stsvend.client.cache` describes (`--no-cache` bypasses it). A cache hit loads
neither boto3 nor botocore and does no network I/O: botocore is imported only on a miss.

Errors are printed as `stsvend: <Code>: <Message>` on stderr, never with a secret. Exit codes:

    0  success
    1  anything else: an unexpected answer, an internal error of the service, a local failure
    2  usage or a bad request: no or malformed API URL, a server id naming another host, a
       malformed --tag, HTTP 400 and 413
    3  not authenticated or denied: no ambient AWS credentials, HTTP 401 and 403, and
       502 AssumeRoleDenied (STS refused the role: a denial, not an outage)
    4  service unavailable or unreachable: HTTP 503 and 429, other 502 and 504 from the gateway,
       connection errors and timeouts (after one retry for connection errors and 503)

`stsvend exec --env` replaces itself with the command, so the command's own exit code is the result
(126 if it cannot be run, 127 if it is not found); `stsvend exec` without `--env` runs it under the
credentials server of stsvend.client.credserver, with the same exit codes.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from stsvend import TIMESTAMP_FORMAT, __version__
from stsvend.client import plain
from stsvend.client.cache import (
    Answer,
    CacheUnavailable,
    CredentialCache,
    answer_problem,
    cache_key,
    caller_identity,
    default_directory,
    parse_expiration,
)
from stsvend.client.plain import urlsplit
from stsvend.errors import EXIT_DENIED, EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from stsvend.terminal import one_line

# typing.TYPE_CHECKING without importing typing, which would cost every cache hit ~2 ms. Nor does a
# hit import `json`, `re`, `shlex` or `urllib.parse` (see stsvend.client.plain): each is imported
# where a miss or another command needs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping
    from typing import Any

    from stsvend.client.signing import Signer

    Transport = Callable[[str, str, dict[str, str], bytes | None], "HttpAnswer"]

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 30.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 10.0
MAX_ANSWER_BYTES = 1 << 20
NOT_AUTHENTICATED_HINT = (
    " -- check that your ambient AWS credentials are valid and unexpired, that this machine's"
    " clock is right, and that the server answers as this API URL (its STSVEND_SERVER_ID lists"
    " it) and verifies proofs with the STS endpoint and region you sign for"
    " (AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, --region)"
)
_EXECUTE_API_HOST = r"^[a-z0-9-]+\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$"
# Set while stsvend loads its own ambient credentials. If loading them runs stsvend again (a profile
# whose credential_process is stsvend itself), the inner run fails at once, before it could wait
# for the cache lock the outer run holds.
RESOLVING_ENV = "STSVEND_RESOLVING_CREDENTIALS"
# The library's threads load ambient credentials one at a time: the variable is process-wide, and
# one thread's removal must not pull it from under another (nor fail because it is gone already).
_RESOLVING_LOCK = _thread.allocate_lock()
# Variables the child of `stsvend exec` must not see: they would name other credentials.
_DROPPED_FOR_EXEC = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", RESOLVING_ENV)
# Set for the child of `stsvend exec` (the role ARN): a nested exec or serve refuses to run.
EXEC_MARKER = "STSVEND_EXEC"


# -- settings -----------------------------------------------------------------------------------


def recursion_tag(marker: str) -> str:
    """What an stsvend run started while loading credentials says when it refuses: the marker
    tells the run that started it that the profile it loaded runs stsvend (signing.resolve_source)."""
    return f"[stsvend-recursion {marker}]"


def refuse_recursion(env: Mapping[str, str]) -> None:
    marker = env.get(RESOLVING_ENV)
    if marker:
        # The marker comes from the environment: only the form stsvend writes is repeated.
        ours = len(marker) == 32 and marker.isascii() and marker.isalnum()
        tag = f" {recursion_tag(marker)}" if ours else ""
        raise CommandError(
            "NoCredentials",
            "stsvend was run to load its own ambient credentials: the profile it takes them from "
            "must not use stsvend as its credential_process (pass --source-profile NAME naming the "
            f"profile with this machine's own credentials){tag}",
            EXIT_DENIED,
        )


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
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
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


def _is_loopback(host: str) -> bool:
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


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError("InvalidTag", f"--tag takes KEY=VALUE, not {pair!r}", EXIT_USAGE)
        if key in tags:
            raise CommandError("InvalidTag", f"tag {key!r} is given twice", EXIT_USAGE)
        tags[key] = value
    return tags


def credential_request(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /credentials body; only what the user set."""
    body: dict[str, Any] = {"role_arn": args.role}
    if args.duration is not None:
        body["duration_seconds"] = args.duration
    tags = parse_tags(args.tag)
    if tags:
        body["tags"] = tags
    if args.session_name is not None:
        body["session_name"] = args.session_name
    return body


# -- HTTP ---------------------------------------------------------------------------------------


class HttpAnswer:
    # A plain class: a dataclass or NamedTuple would import dataclasses (~5 ms) or typing (~2 ms)
    # on every cache hit.
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def urllib3_transport(
    method: str, url: str, headers: dict[str, str], body: bytes | None
) -> HttpAnswer:
    """One request, no redirects, no retries of its own; raises ConnectionError or TimeoutError.

    Like botocore, it honours HTTP(S)_PROXY / NO_PROXY (never for a loopback API) and AWS_CA_BUNDLE.
    """
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
    if not proxies or _is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(parts.scheme)


class ApiClient:
    """Signed calls to one stsvend API; botocore is loaded when the first call is made."""

    def __init__(
        self,
        url: str,
        region: str,
        env: Mapping[str, str],
        transport: Transport = urllib3_transport,
        sleep: Callable[[float], None] = time.sleep,
        server_id: str | None = None,
        source_profile: str | None = None,
    ) -> None:
        self.url = url
        self.region = region
        self.server_id = server_id_for(url, server_id, env)
        self._env = env
        self._source_profile = source_profile
        self._transport = transport
        self._sleep = sleep
        self._signer: Signer | None = None

    def call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Answer:
        """The JSON answer; retried once after a connection error or a 503 (per Retry-After)."""
        import json  # a miss: calls the API

        body = None if payload is None else json.dumps(payload).encode()
        for attempt in (1, 2):
            try:
                answer = self._send(method, path, body)
            except ConnectionError as exc:
                if attempt == 2:
                    raise CommandError("ServiceUnreachable", str(exc), EXIT_UNAVAILABLE) from exc
                self._sleep(DEFAULT_RETRY_AFTER_SECONDS)
                continue
            except TimeoutError as exc:
                raise CommandError("ServiceUnreachable", str(exc), EXIT_UNAVAILABLE) from exc
            if answer.status == 503 and attempt == 1:
                self._sleep(retry_after(answer.headers))
                continue
            return decode_answer(answer)
        raise AssertionError("unreachable: the second attempt returns or raises")

    @property
    def source(self) -> Any:
        """Where the credentials that signed came from (signing.Source), once a call was signed."""
        return None if self._signer is None else self._signer.source

    def _send(self, method: str, path: str, body: bytes | None) -> HttpAnswer:
        signer = self._load_signer()
        url = self.url + path
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        from stsvend.client.signing import PROOF_HEADER, request_binding

        binding = request_binding(method, path, body or b"")
        headers[PROOF_HEADER] = self._guard(lambda: signer.identity_proof(self.server_id, binding))
        headers = signer.sign(method, url, headers, body or b"")
        headers["User-Agent"] = f"stsvend/{__version__}"
        try:
            return self._transport(method, url, headers, body)
        except (ValueError, UnicodeError) as exc:
            # http.client quotes the offending header, which may hold a secret: never show it.
            raise CommandError(
                "InvalidRequest", f"cannot send the request: {type(exc).__name__} in a header",
                EXIT_OTHER,
            ) from None

    def _load_signer(self) -> Signer:
        if self._signer is None:
            Signer = import_signing().Signer
            marker = plain.sha256_hex(os.urandom(32))[:32]

            with _RESOLVING_LOCK:
                os.environ[RESOLVING_ENV] = marker
                try:
                    self._signer = self._guard(
                        lambda: Signer(self.region, source_profile=self._source_profile, env=self._env,
                                       marker=marker)
                    )
                finally:
                    del os.environ[RESOLVING_ENV]
        return self._signer

    @staticmethod
    def _guard(action: Callable[[], Any]) -> Any:
        from stsvend.client.signing import CredentialsUnavailable

        try:
            return action()
        except CredentialsUnavailable as exc:
            raise CommandError("NoCredentials", str(exc), EXIT_DENIED) from None


# The oldest botocore the client is tested with (pyproject.toml), which reads AWS_ENDPOINT_URL and
# AWS_ENDPOINT_URL_<SERVICE>: the one-file client (`make client-zipapp`) uses whatever is installed.
MIN_BOTOCORE = (1, 34)


def import_signing() -> Any:
    """stsvend.client.signing, after checking that botocore is there and new enough."""
    try:
        import botocore
    except ImportError:
        raise CommandError(
            "NoBotocore", "a cache miss signs with botocore, which is not installed: pip install "
            f"'botocore>={MIN_BOTOCORE[0]}.{MIN_BOTOCORE[1]}' (or use the stsvend package)", EXIT_OTHER,
        ) from None
    version = str(getattr(botocore, "__version__", "0"))
    found = tuple(int(part) if part.isdigit() else 0 for part in version.split(".")[:2])
    if found < MIN_BOTOCORE:
        raise CommandError(
            "BotocoreTooOld", f"botocore {version[:20]!r} is older than "
            f"{MIN_BOTOCORE[0]}.{MIN_BOTOCORE[1]}, the first stsvend supports (AWS_ENDPOINT_URL): "
            "upgrade it", EXIT_OTHER,
        )
    import stsvend.client.signing as signing

    return signing


def retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def decode_answer(answer: HttpAnswer) -> Answer:
    if len(answer.body) > MAX_ANSWER_BYTES:
        raise CommandError("InvalidAnswer", "the service's answer is too large", EXIT_OTHER)
    import json

    try:
        payload = json.loads(answer.body) if answer.body else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        payload = None
    if 200 <= answer.status < 300:
        if not isinstance(payload, dict):
            raise CommandError(
                "InvalidAnswer", f"HTTP {answer.status} without a JSON object", EXIT_OTHER
            )
        return payload
    raise _service_error(answer.status, payload)


def _service_error(status: int, payload: Any) -> CommandError:
    fields = payload if isinstance(payload, dict) else {}
    code = fields.get("Code")
    message = fields.get("Message") or fields.get("message")  # API Gateway says "message"
    request_id = fields.get("RequestId")
    text = one_line(message, limit=500) if isinstance(message, str) and message else f"HTTP {status}"
    if status == 401:
        text += NOT_AUTHENTICATED_HINT
    return CommandError(
        one_line(code, limit=64) if isinstance(code, str) and code else f"HTTP{status}",
        text,
        _exit_status(status, code),
        one_line(request_id, limit=100) if isinstance(request_id, str) else "",
    )


def _exit_status(status: int, code: Any) -> int:
    if status in (400, 413):
        return EXIT_USAGE
    if status in (401, 403) or (status == 502 and code == "AssumeRoleDenied"):
        return EXIT_DENIED
    if status in (429, 502, 503, 504):
        return EXIT_UNAVAILABLE
    return EXIT_OTHER


# -- credentials --------------------------------------------------------------------------------


def vend(
    url: str,
    region: str,
    env: Mapping[str, str],
    request: Mapping[str, Any],
    server_id: str | None = None,
    source_profile: str | None = None,
) -> Answer:
    """One signed POST /credentials, its answer checked (`answer_problem`: never cached or printed
    otherwise); no cache. `server_id` as in server_id_for, `source_profile` as in Signer."""
    client = ApiClient(url, region, env, server_id=server_id, source_profile=source_profile)
    answer = client.call("POST", "/credentials", request)
    problem = answer_problem(answer, time.time())
    if problem is not None:
        # The message never quotes a secret.
        raise CommandError("InvalidAnswer", problem, EXIT_OTHER)
    return answer


def obtain_credentials(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Answer:
    """The service's answer for the requested role: from the cache, else from the API."""
    env = os.environ if env is None else env
    if _oidc_requested(args):
        from stsvend.client import oidc  # a CI job's token instead of this machine's AWS identity

        oidc.requested(args)  # one source only
        return oidc.obtain(args, env)
    refuse_recursion(env)
    url = api_url(args.api, env)
    server_id = server_id_for(url, args.server_id, env)
    request = credential_request(args)
    window = args.refresh_window
    if window is not None and window < 0:
        raise CommandError("InvalidRequest", "--refresh-window must be 0 or more", EXIT_USAGE)
    source_profile = getattr(args, "source_profile", None)

    def fetch() -> Answer:
        region = resolve_region(args.region, url, env)
        return vend(url, region, env, request, server_id, source_profile)

    if args.no_cache:
        return fetch()
    directory = default_directory(env)
    cache = CredentialCache(directory)
    key = cache_key(url, caller_identity(env, source_profile), request, server_id)

    def fetch_unless_down() -> Answer:
        # A miss: the API failed moments ago and valid credentials are cached, so they are served
        # at once (cached_through_outage) rather than waiting for the API again on every run.
        from stsvend.client import status

        down = status.recent_outage(directory, url)
        if down is not None and cache.read_unexpired(key) is not None:
            since = time.strftime("%H:%M:%S", time.gmtime(down["since"]))
            raise CommandError(
                "ServiceUnavailable",
                f"the API failed at {since} UTC ({one_line(str(down.get('code')), limit=64)}); "
                f"not asked again for {status.OUTAGE_MEMORY_SECONDS:.0f}s after that",
                EXIT_UNAVAILABLE,
            )
        try:
            answer = fetch()
        except CommandError as error:
            if error.exit_status == EXIT_UNAVAILABLE:
                status.record_outage(directory, url, error.code, error.message)
            else:
                status.forget_outage(directory, url)  # it answered: a denial is not an outage
            raise
        status.forget_outage(directory, url)
        return answer

    def cached_through_outage(error: Exception) -> Answer | None:
        # The API is down or unreachable: credentials that are still valid beat none.
        if not isinstance(error, CommandError) or error.exit_status != EXIT_UNAVAILABLE:
            return None
        answer = cache.read_unexpired(key)
        if answer is not None:
            warn(f"{error.code}: {error.message}; using the cached credentials, which expire at "
                 f"{_rfc3339(answer['Expiration'])}")
        return answer

    return cache.get_or_fetch(key, window, fetch_unless_down, warn=warn, fallback=cached_through_outage)


def _oidc_requested(args: argparse.Namespace) -> bool:
    return (
        getattr(args, "oidc_token_file", None) is not None
        or getattr(args, "oidc_token_env", None) is not None
        or bool(getattr(args, "github_actions", False))
    )


def render(answer: Answer, output_format: str) -> str:
    if output_format == "json":
        import json

        return json.dumps(answer, indent=2) + "\n"
    expiration = _rfc3339(answer["Expiration"])
    if output_format == "env":
        import shlex

        variables = _credential_variables(answer)
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    return plain.dumps({
        "Version": 1,
        "AccessKeyId": answer["AccessKeyId"],
        "SecretAccessKey": answer["SecretAccessKey"],
        "SessionToken": answer["SessionToken"],
        "Expiration": expiration,
    }) + "\n"


def _rfc3339(value: str) -> str:
    if plain.utc_seconds(value) is not None:
        return value  # already in TIMESTAMP_FORMAT
    parsed = parse_expiration(value)
    assert parsed is not None  # answers are checked before they are cached or rendered
    return parsed.strftime(TIMESTAMP_FORMAT)


def _credential_variables(answer: Answer) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": answer["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": answer["SecretAccessKey"],
        "AWS_SESSION_TOKEN": answer["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": _rfc3339(answer["Expiration"]),
        "AWS_SESSION_EXPIRATION": _rfc3339(answer["Expiration"]),
    }


def exec_environment(answer: Answer, env: Mapping[str, str], role: str) -> dict[str, str]:
    child = {k: v for k, v in env.items() if k not in _DROPPED_FOR_EXEC}
    child.update(_credential_variables(answer))
    child[EXEC_MARKER] = role
    return child


# -- commands -----------------------------------------------------------------------------------


def cmd_credentials(args: argparse.Namespace) -> int:
    try:
        answer = obtain_credentials(args)
    except CommandError as error:
        if not os.environ.get(RESOLVING_ENV):  # a refused inner run is not a failure to show
            record_failure(args, error)
        raise
    sys.stdout.write(render(answer, args.format))
    sys.stdout.flush()
    return 0


def record_failure(args: argparse.Namespace, error: CommandError) -> None:
    """The failure where `stsvend doctor` shows it (stsvend.client.status); never a secret."""
    from stsvend.client import status

    env = os.environ
    status.record_failure(default_directory(env), {
        "command": args.command, "api": one_line(str(args.api or env.get("STSVEND_API_URL", "")), limit=300),
        "role": one_line(str(args.role), limit=300),
        "profile": one_line(env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "", limit=100),
        "code": error.code, "message": error.message, "exit_status": error.exit_status,
        "request_id": error.request_id,
    })


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise CommandError("NoCommand", "usage: stsvend exec --role ARN -- CMD [ARG...]", EXIT_USAGE)
    environment = exec_environment(obtain_credentials(args), os.environ, args.role)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, environment)  # noqa: S606 - running CMD is the point
    except FileNotFoundError:
        raise CommandError("CommandNotFound", f"{argv[0]}: not found", 127) from None
    except OSError as exc:
        raise CommandError("CannotRun", f"{argv[0]}: {exc.strerror or exc}", 126) from None
    return 0  # not reached: execvpe returns only by raising


def cmd_cache(args: argparse.Namespace) -> int:
    """`stsvend cache clear`: forget every cached answer (the next call of each vends anew)."""
    try:
        removed = CredentialCache(default_directory(os.environ)).clear()
    except CacheUnavailable as exc:
        raise CommandError("CacheUnavailable", str(exc), EXIT_OTHER) from None
    print(f"removed {removed} cached answer(s) from {default_directory(os.environ)}")
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    return _show(args, "/roles")


def cmd_whoami(args: argparse.Namespace) -> int:
    return _show(args, "/whoami")


def _show(args: argparse.Namespace, path: str) -> int:
    import json

    env = os.environ
    refuse_recursion(env)
    url = api_url(args.api, env)
    region = resolve_region(args.region, url, env)
    client = ApiClient(url, region, env, server_id=args.server_id,
                       source_profile=getattr(args, "source_profile", None))
    answer = client.call("GET", path)
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    return 0


def warn(message: str) -> None:
    print(one_line(f"stsvend: warning: {message}"), file=sys.stderr)
