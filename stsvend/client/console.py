"""`stsvend console --role ARN [--print]`: the AWS console as a role, from credentials vended (and
audited) like any other; the sign-in URL opened in a browser, or printed with --print.

The URL is made as the IAM documentation describes a custom identity broker's
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_enable-console-custom-url.html):
the federation endpoint's `getSigninToken` with the session, then a `login` URL carrying the sign-in
token. The endpoint is the role's partition's, in the region's sign-in host when there is one; the
session token goes to that endpoint only and is never printed (the URL holds the sign-in token,
which works once, for 15 minutes).

SessionDuration (the console session's length, 900-43200 s) is sent only when the credentials
outlive an hour, which only a role granted in web-identity mode gives: the federation endpoint does
not take it for a role-chained session, which then ends with its hour.

STSVEND_FEDERATION_URL replaces the endpoint (https, or http on loopback only): the local stack's
stand-in (`stsvend.local.federation`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from stsvend.client.cache import parse_expiration
from stsvend.client.calls import vend
from stsvend.client.location import api_url, resolve_region, server_id_for
from stsvend.client.reentry import refuse_recursion
from stsvend.client.request import credential_request
from stsvend.errors import EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from stsvend.terminal import identifier, one_line

ISSUER = "stsvend"
DEFAULT_SESSION_NAME = "console"
CHAINED_SECONDS = 3600
MIN_CONSOLE_SECONDS = 900
MAX_CONSOLE_SECONDS = 43200
FEDERATION_VARIABLE = "STSVEND_FEDERATION_URL"
# partition -> (sign-in host, console host)
_HOSTS = {
    "aws": ("signin.aws.amazon.com", "console.aws.amazon.com"),
    "aws-us-gov": ("signin.amazonaws-us-gov.com", "console.amazonaws-us-gov.com"),
    "aws-cn": ("signin.amazonaws.cn", "console.amazonaws.cn"),
}
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")


def endpoints(role_arn: str, region: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The federation endpoint and the console URL to land on, for the role's partition."""
    partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else ""
    if partition not in _HOSTS:
        raise CommandError("InvalidRequest", "--role must be an IAM role ARN", EXIT_USAGE)
    signin, console = _HOSTS[partition]
    region = region if region and _REGION.fullmatch(region) else None
    if region is not None and partition == "aws" and region != "us-east-1":
        signin = f"{region}.{signin}"  # the regional sign-in endpoint
    destination = f"https://{console}/console/home" + (f"?region={region}" if region else "")
    override = env.get(FEDERATION_VARIABLE, "").strip()
    if not override:
        return f"https://{signin}/federation", destination
    parts = urllib.parse.urlsplit(override)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parts.scheme == "https" or loopback) or parts.query or parts.fragment or not parts.hostname:
        raise CommandError(
            "InvalidRequest",
            f"{FEDERATION_VARIABLE} must be an https URL (http only on loopback)",
            EXIT_USAGE,
        )
    return override, destination


def console_seconds(answer: Mapping[str, Any], now: float) -> int | None:
    """SessionDuration for these credentials, or None to send none (a chained session's hour)."""
    expires = parse_expiration(answer["Expiration"])
    if expires is None:  # `vend` checked the answer; kept for the type
        return None
    remaining = int(expires.timestamp() - now)
    if remaining <= CHAINED_SECONDS:
        return None
    return min(remaining, MAX_CONSOLE_SECONDS)


def _get(url: str) -> bytes:
    """GET, the answer read; an error never quotes the URL (it may carry the session)."""
    request = urllib.request.Request(url, headers={"User-Agent": "stsvend-console"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - a fixed https endpoint
            return bytes(response.read(65536))
    except urllib.error.HTTPError as error:
        detail = error.read(300).decode("utf-8", "replace").strip().splitlines()[:1]
        raise CommandError(
            "SigninRefused",
            f"the federation endpoint refused the session (HTTP {error.code}"
            + (f": {one_line(detail[0], limit=200)}" if detail else "")
            + ")",
            EXIT_OTHER,
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CommandError(
            "SigninUnreachable",
            f"the federation endpoint could not be reached ({type(reason).__name__})",
            EXIT_UNAVAILABLE,
        ) from None


def signin_url(answer: Mapping[str, Any], federation: str, destination: str, now: float) -> str:
    session = json.dumps(
        {
            "sessionId": answer["AccessKeyId"],
            "sessionKey": answer["SecretAccessKey"],
            "sessionToken": answer["SessionToken"],
        }
    )
    query: dict[str, str] = {"Action": "getSigninToken"}
    seconds = console_seconds(answer, now)
    if seconds is not None:
        query["SessionDuration"] = str(seconds)
    query["Session"] = session
    raw = _get(f"{federation}?{urllib.parse.urlencode(query)}")
    try:
        token = json.loads(raw)["SigninToken"]
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str) or not token:
        raise CommandError(
            "SigninRefused", "the federation endpoint answered without a sign-in token", EXIT_OTHER
        )
    login = {"Action": "login", "Issuer": ISSUER, "Destination": destination, "SigninToken": token}
    return f"{federation}?{urllib.parse.urlencode(login)}"


def cmd_console(args: argparse.Namespace) -> int:
    env = os.environ
    refuse_recursion(env)
    url = api_url(args.api, env)
    if args.session_name is None:
        args.session_name = DEFAULT_SESSION_NAME
    request = credential_request(args)
    region = resolve_region(args.region, url, env)
    federation, destination = endpoints(args.role, region, env)
    answer = vend(
        url,
        region,
        env,
        request,
        server_id_for(url, args.server_id, env),
        getattr(args, "source_profile", None),
    )
    link = signin_url(answer, federation, destination, time.time())
    if args.print:
        sys.stdout.write(link + "\n")
        return 0
    import webbrowser

    if not webbrowser.open(link):
        raise CommandError("NoBrowser", "no browser could be opened: run again with --print", EXIT_OTHER)
    print(f"stsvend: opened the console as {identifier(answer.get('AssumedRoleArn'))} in a browser",
          file=sys.stderr)
    return 0
