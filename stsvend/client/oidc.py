"""Credentials for a CI job's OIDC token: `POST /oidc/credentials` with `Authorization: Bearer`.

No AWS credentials and no botocore on this path: the token is the job's identity. It comes from
`--oidc-token-file PATH` (read again for every vend, since GitLab and Kubernetes rotate the file),
`--oidc-token-env VAR`, or `--github-actions` (asked of the runner at ACTIONS_ID_TOKEN_REQUEST_URL
with ACTIONS_ID_TOKEN_REQUEST_TOKEN, for `--oidc-audience`). Nothing is cached: a token belongs to
one run, and the answer to it is that run's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from stsvend.client.cache import Answer
from stsvend.client.calls import ApiClient
from stsvend.client.location import api_url, is_loopback
from stsvend.client.reentry import refuse_recursion
from stsvend.client.request import credential_request
from stsvend.client.transport import urllib3_transport
from stsvend.constants import __version__
from stsvend.errors import EXIT_DENIED, EXIT_OTHER, EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from stsvend.client.transport import Transport

OIDC_PATH = "/oidc/credentials"
# The server refuses tokens over 8 KiB; a file or variable over this is not a token.
MAX_TOKEN_BYTES = 16 * 1024
DEFAULT_AUDIENCE = "stsvend"
AUDIENCE_ENV = "STSVEND_OIDC_AUDIENCE"
GITHUB_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


def requested(args: argparse.Namespace) -> bool:
    """Whether the command was asked to use an OIDC token (and not this machine's AWS identity)."""
    chosen = [
        getattr(args, "oidc_token_file", None) is not None,
        getattr(args, "oidc_token_env", None) is not None,
        bool(getattr(args, "github_actions", False)),
    ]
    if sum(chosen) > 1:
        raise CommandError(
            "InvalidRequest",
            "use one of --oidc-token-file, --oidc-token-env and --github-actions",
            EXIT_USAGE,
        )
    return any(chosen)


def _checked(token: str, where: str) -> str:
    token = token.strip()
    if not token:
        raise CommandError("NoToken", f"{where} is empty", EXIT_DENIED)
    shaped = token.count(".") == 2 and token.isascii() and token.isprintable()
    if len(token) > MAX_TOKEN_BYTES or not shaped:
        # Never echoed: it may be a secret of another kind.
        raise CommandError("InvalidToken", f"{where} does not hold one JWT", EXIT_USAGE)
    return token


def _from_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        problem = exc.strerror or exc
        raise CommandError("NoToken", f"--oidc-token-file {path}: {problem}", EXIT_DENIED) from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(
            "InvalidToken", f"--oidc-token-file {path} does not hold one JWT", EXIT_USAGE
        ) from None
    return _checked(text, f"--oidc-token-file {path}")


def _from_env(name: str, env: Mapping[str, str]) -> str:
    if name not in env:
        raise CommandError("NoToken", f"--oidc-token-env {name}: the variable is not set", EXIT_DENIED)
    return _checked(env[name], f"--oidc-token-env {name}")


def _from_github(env: Mapping[str, str], audience: str, transport: Transport) -> str:
    """Ask the runner for a token with `audience` (the job needs `permissions: id-token: write`)."""
    url, bearer = env.get(GITHUB_URL_ENV), env.get(GITHUB_TOKEN_ENV)
    if not url or not bearer:
        raise CommandError(
            "NoToken",
            f"--github-actions: {GITHUB_URL_ENV} and {GITHUB_TOKEN_ENV} are not set; give the job"
            " `permissions: id-token: write`",
            EXIT_DENIED,
        )
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        raise CommandError("InvalidRequest", f"{GITHUB_URL_ENV} must be an https URL", EXIT_USAGE)
    request_url = f"{url}{'&' if parts.query else '?'}audience={quote(audience, safe='')}"
    headers = {
        "Authorization": f"bearer {bearer}",
        "Accept": "application/json",
        "User-Agent": f"stsvend/{__version__}",
    }
    try:
        answer = transport("GET", request_url, headers, None)
    except (ConnectionError, TimeoutError) as exc:
        message = f"--github-actions: the runner did not answer ({exc})"
        raise CommandError("NoToken", message, EXIT_OTHER) from None
    if answer.status != 200:
        message = f"--github-actions: the runner answered HTTP {answer.status}"
        raise CommandError("NoToken", message, EXIT_DENIED)
    try:
        value = json.loads(answer.body).get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str):
        raise CommandError("NoToken", "--github-actions: the runner's answer holds no token", EXIT_OTHER)
    return _checked(value, "the runner's token")


def token_source(
    args: argparse.Namespace, env: Mapping[str, str], transport: Transport = urllib3_transport
) -> Callable[[], str]:
    """A function that gets the token anew each time it is called (once per vend)."""
    if getattr(args, "oidc_token_file", None) is not None:
        path: str = args.oidc_token_file
        return lambda: _from_file(path)
    if getattr(args, "oidc_token_env", None) is not None:
        name: str = args.oidc_token_env
        return lambda: _from_env(name, env)
    audience = getattr(args, "oidc_audience", None) or env.get(AUDIENCE_ENV) or DEFAULT_AUDIENCE
    return lambda: _from_github(env, audience, transport)


class OidcApiClient(ApiClient):
    """Calls with a bearer token instead of a SigV4 signature and identity proof (no botocore)."""

    def __init__(
        self,
        url: str,
        env: Mapping[str, str],
        token: Callable[[], str],
        transport: Transport = urllib3_transport,
    ) -> None:
        super().__init__(url, "", env, transport=transport)
        self._token = token

    def _authorized(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self._token()}"}


def vend(
    url: str,
    env: Mapping[str, str],
    request: Mapping[str, Any],
    token: Callable[[], str],
    transport: Transport = urllib3_transport,
) -> Answer:
    """One POST /oidc/credentials with a token read now; the answer checked as a signed vend's."""
    return OidcApiClient(url, env, token, transport).vend(OIDC_PATH, request)


def vend_again(
    args: argparse.Namespace, env: Mapping[str, str], transport: Transport = urllib3_transport
) -> Callable[[], Answer]:
    """What `credentials` and `exec --env` vend with (once, never cached) and `exec` / `serve`
    renew with: each call reads the token again."""
    refuse_recursion(env)
    url = api_url(args.api, env)
    request = credential_request(args)
    source = token_source(args, env, transport)
    return lambda: vend(url, env, request, source, transport)
