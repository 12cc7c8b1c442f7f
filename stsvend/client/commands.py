"""The client's commands on the API: `credentials` (what credential_process runs), `roles`,
`whoami` and `cache clear` (docs/design.md section 6); `exec` and `serve` are stsvend.client.exec's
and stsvend.client.credserver's.

Credentials are cached as `stsvend.client.cache` describes (`--no-cache` bypasses it). A cache hit
loads neither boto3 nor botocore, nor the modules that call the API, and does no network I/O:
stsvend.client.calls (and botocore with it) is imported only on a miss. Nor does a hit import
`json`, `re`, `shlex`, `typing` or `urllib.parse` (see stsvend.client.plain): each is imported
where a miss or another command needs it.

Errors are printed as `stsvend: <Code>: <Message>` on stderr, never with a secret; the exit
statuses are stsvend.client.answers'.
"""

from __future__ import annotations

import os
import sys
import time

from stsvend.client import plain
from stsvend.client.cache import (
    Answer,
    CacheUnavailable,
    CredentialCache,
    cache_key,
    caller_identity,
    default_directory,
    rfc3339,
)
from stsvend.client.location import api_url, resolve_region, server_id_for
from stsvend.client.reentry import RESOLVING_ENV, refuse_recursion
from stsvend.client.request import credential_request, oidc_requested
from stsvend.errors import EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError, warn
from stsvend.terminal import one_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the cache hit loads this
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping


# -- credentials --------------------------------------------------------------------------------


def obtain_credentials(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Answer:
    """The service's answer for the requested role: from the cache, else from the API."""
    env = os.environ if env is None else env
    if oidc_requested(args):
        from stsvend.client import oidc  # a CI job's token instead of this machine's AWS identity

        oidc.requested(args)  # one source only
        return oidc.vend_again(args, env)()  # never cached: a token belongs to one run
    refuse_recursion(env)
    url = api_url(args.api, env)
    server_id = server_id_for(url, args.server_id, env)
    request = credential_request(args)
    window = args.refresh_window
    if window is not None and window < 0:
        raise CommandError("InvalidRequest", "--refresh-window must be 0 or more", EXIT_USAGE)
    source_profile = getattr(args, "source_profile", None)

    def fetch() -> Answer:
        from stsvend.client.calls import vend  # a miss: calls the API

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
                 f"{rfc3339(answer['Expiration'])}")
        return answer

    return cache.get_or_fetch(key, window, fetch_unless_down, warn=warn, fallback=cached_through_outage)


def render(answer: Answer, output_format: str) -> str:
    if output_format == "json":
        import json

        return json.dumps(answer, indent=2) + "\n"
    if output_format == "env":
        import shlex

        variables = credential_variables(answer)
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    return plain.dumps({
        "Version": 1,
        "AccessKeyId": answer["AccessKeyId"],
        "SecretAccessKey": answer["SecretAccessKey"],
        "SessionToken": answer["SessionToken"],
        "Expiration": rfc3339(answer["Expiration"]),
    }) + "\n"


def credential_variables(answer: Answer) -> dict[str, str]:
    """The environment variables the AWS SDKs read credentials from."""
    return {
        "AWS_ACCESS_KEY_ID": answer["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": answer["SecretAccessKey"],
        "AWS_SESSION_TOKEN": answer["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": rfc3339(answer["Expiration"]),
        "AWS_SESSION_EXPIRATION": rfc3339(answer["Expiration"]),
    }


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

    from stsvend.client.calls import ApiClient

    env = os.environ
    refuse_recursion(env)
    url = api_url(args.api, env)
    region = resolve_region(args.region, url, env)
    client = ApiClient(url, region, env, server_id=args.server_id,
                       source_profile=getattr(args, "source_profile", None))
    answer = client.call("GET", path)
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    return 0
