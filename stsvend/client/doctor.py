"""`stsvend doctor [--profile NAME]`: why a profile's credentials do or do not come, step by step.

JavaScript SDK v3, Terraform and awscrt hide what a failing credential_process printed. `doctor`
reads the profile as the SDKs do (the AWS config and credentials files), and for a profile whose
`credential_process` runs `stsvend credentials`, follows that line as a run of it would, with
AWS_PROFILE naming the profile: the command and whether it can be found, the API URL, the server
id and region, where stsvend's own identity comes from (and which profiles it passed over because
they run stsvend), who the API sees (GET /whoami), the cache entry, a remembered outage and the
last failure recorded. Finally it runs the line itself, as the SDK would, and shows its outcome
(never the credentials). It prints no secret: access key ids and ARNs only.

Exit status: 0 when the line's run succeeded; else that run's status (the one table of
docs/client.md), or 2 when the profile cannot be read as a stsvend profile.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from typing import Any

from stsvend.client import calls, status
from stsvend.client.cache import (
    CredentialCache,
    cache_key,
    caller_identity,
    default_directory,
    expiration_seconds,
)
from stsvend.client.location import api_url, resolve_region, server_id_for
from stsvend.client.request import credential_request
from stsvend.errors import EXIT_USAGE, CommandError
from stsvend.terminal import one_line


def _say(mark: str, text: str) -> None:
    print(f"{mark:>4}  {text}")


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _text(value: Any, limit: int = 300) -> str:
    """A value from a file, the environment or the API, fit for a terminal."""
    return one_line(value, limit=limit)


def cmd_doctor(args: Any) -> int:
    env = os.environ
    profile = args.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if args.profile:
        # As the SDK's child sees it when AWS_PROFILE selects the profile.
        os.environ["AWS_PROFILE"] = args.profile
    signing = calls.import_signing()
    import botocore.session
    from botocore.exceptions import BotoCoreError

    session = botocore.session.Session()
    files = (session.get_config_variable("config_file"), session.get_config_variable("credentials_file"))
    print(f"stsvend doctor: profile {_text(profile)!r} (AWS config {_text(files[0])}, "
          f"credentials {_text(files[1])})")
    try:
        profiles = session.full_config.get("profiles", {})
    except BotoCoreError as exc:
        raise CommandError("ConfigUnreadable", f"the AWS config files: {exc}", EXIT_USAGE) from None
    if profile not in profiles:
        _say("FAIL", f"no profile {_text(profile)!r} in either file")
        return EXIT_USAGE
    line = profiles[profile].get("credential_process")
    if not isinstance(line, str):
        _say("FAIL", f"profile {_text(profile)!r} has no credential_process: stsvend does not serve it")
        return EXIT_USAGE
    _say("ok", f"credential_process = {_text(line, 2000)}")
    try:
        words = shlex.split(line)
    except ValueError as exc:
        _say("FAIL", f"the line cannot be split as the SDKs split it: {exc}")
        return EXIT_USAGE
    if "credentials" not in words:
        _say("FAIL", "the line does not run `stsvend credentials`")
        return EXIT_USAGE
    from stsvend.client.configure import command_problem

    problem = command_problem(words, env)
    _say("FAIL" if problem else "ok", problem or f"the command is found: {_text(words[0])}")
    from stsvend import cli

    options = words[words.index("credentials"):]
    parsed: Any = cli.fast_credentials_args(options)
    if parsed is None:
        try:
            parsed = cli.build_parser().parse_args(options)
        except SystemExit:
            _say("FAIL", "the line's options are not those of `stsvend credentials` (above)")
            return EXIT_USAGE
    _explain(parsed, signing)
    return _run(words)


def _explain(args: Any, signing: Any) -> None:
    env = os.environ
    try:
        url = api_url(args.api, env)
        server_id = server_id_for(url, args.server_id, env)
        region = resolve_region(args.region, url, env)
        request = credential_request(args)
    except CommandError as error:
        _say("FAIL", f"{error.code}: {error.message}")
        return
    _say("ok", f"API {url}, server id {server_id}, signed for region {region}, role {args.role}")
    client = calls.ApiClient(url, region, env, server_id=args.server_id,
                           source_profile=args.source_profile)
    try:
        client._load_signer()
        source = client.source
        skipped = "".join(f"; passed over profile {name!r}: loading it runs stsvend"
                          for name in source.skipped)
        _say("ok", f"stsvend signs as {source.describe()}, access key id "
                   f"{source.credentials.access_key}{skipped}")
        answer = client.call("GET", "/whoami")
        _say("ok", f"the API sees {_text(answer.get('Arn'))} ({_text(answer.get('IdentityMode'))} mode)")
    except CommandError as error:
        _say("FAIL", f"{error.code}: {_text(error.message, 2000)}")
    directory = default_directory(env)
    cache = CredentialCache(directory)
    key = cache_key(url, caller_identity(env, args.source_profile), request, server_id)
    found = cache.read_unexpired(key)
    if found is None:
        _say("--", f"cache: nothing valid for this line in {directory} (the next run calls the API)")
    else:
        expires = expiration_seconds(found["Expiration"]) or 0.0
        fresh = cache.read(key, args.refresh_window) is not None
        _say("ok", f"cache: credentials for this line until {_when(expires)}"
                   f"{'' if fresh else ', due for refresh: the next run calls the API'}")
    down = status.recent_outage(directory, url)
    if down is not None:
        _say("!!", f"the API failed at {_when(float(down['since']))} ({_text(down.get('code'))}: "
                   f"{_text(down.get('message'))}); runs serve the cache without asking it for "
                   f"{status.OUTAGE_MEMORY_SECONDS:.0f}s after that")
    last = status.last_failure(directory)
    if last is not None:
        when = last.get("time")
        _say("--", f"last failure recorded: {_when(float(when)) if isinstance(when, (int, float)) else '?'}"
                   f" profile {_text(last.get('profile'))!r} role {_text(last.get('role'))}: "
                   f"{_text(last.get('code'))}: {_text(last.get('message'), 2000)} "
                   f"(exit {_text(last.get('exit_status'))})")


def _run(words: list[str]) -> int:
    """The line, run as the SDK runs it (no shell, this environment); its output is credentials,
    so only whether it gave some is shown."""
    try:
        done = subprocess.run(words, capture_output=True, timeout=120, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say("FAIL", f"running the line: {_text(exc)}")
        return 1
    if done.returncode == 0:
        import json

        try:
            expiration = json.loads(done.stdout).get("Expiration")
        except (ValueError, AttributeError):
            expiration = None
        _say("ok", f"a run of the line gave credentials (until {_text(expiration)})")
        return 0
    stderr = done.stderr.decode("utf-8", "replace").strip()
    _say("FAIL", f"a run of the line exited {done.returncode}: {_text(stderr, 2000)}")
    return done.returncode
