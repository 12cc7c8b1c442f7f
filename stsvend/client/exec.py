"""`stsvend exec --role ARN -- CMD [ARG...]`: run a command as a role.

One command, two ways of handing the credentials over. Both parse the child command (`--` first is
dropped; none is a usage error), refuse to run inside another exec's child (`NestedExec`), inside
stsvend's own credential loading (recursion, stsvend.client.reentry) or with Java options that
would take credentials from elsewhere (`CredentialsElsewhere`), build the child's environment from
the agent's and run the command, whose exit status is exec's (127 if it is not found, 126 if it
cannot be run):

- served (the default): the child finds the credentials at a local container-credentials endpoint
  (stsvend.client.credserver), renewed while it runs, and runs under stsvend, which forwards the
  signals a caller sends and ends as the child did (by its signal, if one killed it);
- `--env`: the keys themselves in the child's environment (no renewal, so the child starts with at
  least half of the requested duration ahead, from the cache), and stsvend replaces itself with
  the command.

The served child gets an environment in which every step of the SDKs' chains ahead of the
container provider finds nothing (read from each SDK's source; docs/client-exec.md has the table):

- environment keys, under every name an SDK reads (`AWS_*`, `AMAZON_*`, Go's and Ruby's
  `AWS_ACCESS_KEY`/`AWS_SECRET_KEY`), profiles (`AWS_PROFILE`, `AWS_DEFAULT_PROFILE`), web identity
  (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`) and the other container variables are removed;
- the shared credentials file, config file and boto2 config point at files of this run that hold at
  most a region, so no profile, SSO, login, credential_process or static key is found. The
  JavaScript SDK v2 reads `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` only with
  `AWS_SDK_LOAD_CONFIG` set, and `$HOME/.aws/credentials` otherwise: the child has it set;
- the Java SDKs read system properties (`-Daws.accessKeyId`, `-Daws.profile`, ...) ahead of the
  environment, which the JVM takes from `JAVA_TOOL_OPTIONS`, `JDK_JAVA_OPTIONS` and `_JAVA_OPTIONS`
  and launchers from `JAVA_OPTS`, `MAVEN_OPTS`, `GRADLE_OPTS` and the like: a job with a `*OPTS`
  or `*OPTIONS` variable that sets one is refused, never started with it;
- the JavaScript SDK v2 and the Java SDKs go on down their chain when the endpoint answers with an
  error, to the instance metadata service last: `AWS_EC2_METADATA_DISABLED=true`, so a refused
  renewal never turns into the EC2 instance role's credentials.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TypeVar

from stsvend.client.cache import Answer
from stsvend.client.commands import credential_variables, obtain_credentials
from stsvend.client.credserver import AUTH_TOKEN, FULL_URI, CredentialServer, renewing
from stsvend.client.reentry import EXEC_MARKER, RESOLVING_ENV, refuse_nesting, refuse_recursion
from stsvend.errors import EXIT_USAGE, CommandError, warn

DEFAULT_DURATION_SECONDS = 3600
# Variables the child of `exec --env` must not see: they would name other credentials.
_DROPPED_WITH_KEYS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", RESOLVING_ENV)
# What would name credentials other than the server's, for any SDK's chain (see the docstring):
# the served child's environment has none of these.
_NOT_FOR_THE_CHILD = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_SESSION_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_CREDENTIAL_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # The alternate names the Go, Java v1 and Ruby SDKs read for keys, before the container endpoint.
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AMAZON_ACCESS_KEY_ID", "AMAZON_SECRET_ACCESS_KEY",
    "AMAZON_SESSION_TOKEN",
    RESOLVING_ENV,
)
# The properties that the Java SDKs (v2's SdkSystemSetting and ProfileFileSystemSetting, v1's
# SDKGlobalConfiguration) read for credentials ahead of the container endpoint, or to point that
# endpoint elsewhere. A JVM takes system properties from JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS and
# _JAVA_OPTIONS, and launchers pass on their own variables (JAVA_OPTS, MAVEN_OPTS, GRADLE_OPTS,
# CATALINA_OPTS, ES_JAVA_OPTS, ...): every variable named *OPTS or *OPTIONS is looked at.
_JAVA_CREDENTIAL_PROPERTIES = frozenset(name.lower() for name in (
    "accessKeyId", "secretAccessKey", "secretKey", "sessionToken", "profile", "sharedCredentialsFile",
    "configFile", "webIdentityTokenFile", "roleArn", "roleSessionName", "containerCredentialsPath",
    "containerCredentialsFullUri", "containerAuthorizationToken", "containerAuthorizationTokenFile",
    "containerServiceEndpoint",
))
_JAVA_PROPERTY = re.compile(r"-D\s*aws\.([A-Za-z0-9_]+)(?:=(\S*))?")
# Every signal a caller may send to stop or steer a job; the child receives it instead of stsvend.
_FORWARDED = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGWINCH,
)
_FROM_THE_KEYBOARD = (signal.SIGINT, signal.SIGQUIT)
_T = TypeVar("_T")
_REGION = re.compile(r"^[a-z0-9-]{1,40}$")


def cmd_exec(args: argparse.Namespace) -> int:
    argv = child_command(args.argv)
    refuse_nesting(os.environ)
    refuse_java_credential_properties(os.environ)
    if not argv:
        raise CommandError("NoCommand", "usage: stsvend exec --role ARN -- CMD [ARG...]", EXIT_USAGE)
    refuse_recursion(os.environ)
    if args.env:
        return _exec_with_keys(args, argv)
    return _exec_served(args, argv)


def child_command(argv: list[str]) -> list[str]:
    """The command exec runs: what follows the options, without a leading `--`."""
    return argv[1:] if argv[:1] == ["--"] else list(argv)


def _exec_with_keys(args: argparse.Namespace, argv: list[str]) -> int:
    # The child keeps its keys for its whole life: it must start with most of that life ahead.
    duration = args.duration or DEFAULT_DURATION_SECONDS
    window = args.refresh_window
    if window is None or window >= 0:  # a negative one is refused with the cache's message
        args.refresh_window = max(window or 0, duration // 2)
    environment = environment_with_keys(os.environ, obtain_credentials(args), args.role)
    _started(argv, lambda: os.execvpe(argv[0], argv, environment))  # noqa: S606 - running CMD is the point
    return 0  # not reached: execvpe returns only by raising


def _exec_served(args: argparse.Namespace, argv: list[str]) -> int:
    server = CredentialServer(renewing(args), warn).start()
    files = Path(tempfile.mkdtemp(prefix="stsvend-exec-"))
    try:
        environment = served_environment(os.environ, server, files, args.role)
        status = _supervise(argv, environment)
    finally:
        server.stop()
        shutil.rmtree(files, ignore_errors=True)
    if status < 0:
        # The child was killed by a signal: end the same way, so whoever waits sees that signal.
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


def _started(argv: list[str], start: Callable[[], _T]) -> _T:
    """`start()`, which starts the command; one that cannot be started is the shell's 127 (not
    found) or 126 (cannot run)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return start()
    except FileNotFoundError:
        raise CommandError("CommandNotFound", f"{argv[0]}: not found", 127) from None
    except OSError as exc:
        raise CommandError("CannotRun", f"{argv[0]}: {exc.strerror or exc}", 126) from None


# -- the child's environment --------------------------------------------------------------------


def environment_with_keys(env: Mapping[str, str], answer: Answer, role: str) -> dict[str, str]:
    """`exec --env`: `env` without other credentials' names, with the vended keys."""
    child = {k: v for k, v in env.items() if k not in _DROPPED_WITH_KEYS}
    child.update(credential_variables(answer))
    child[EXEC_MARKER] = role
    return child


def served_environment(
    env: Mapping[str, str], server: CredentialServer, files: Path, role: str
) -> dict[str, str]:
    """`env` without other credentials, pointed at the server, with the shared files of this run."""
    child = {k: v for k, v in env.items() if k not in _NOT_FOR_THE_CHILD}
    empty = files / "credentials"
    config = files / "config"
    empty.write_text("", encoding="utf-8")
    region = _profile_region(env)
    config.write_text(f"[default]\nregion = {region}\n" if region else "", encoding="utf-8")
    child.update({
        FULL_URI: server.url,
        AUTH_TOKEN: server.token,
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CREDENTIAL_PROFILES_FILE": str(empty),  # the Java SDK v1's name for that file
        "AWS_CONFIG_FILE": str(config),
        "BOTO_CONFIG": str(empty),
        # The JavaScript SDK v2 reads the two files above only with this set, $HOME/.aws/credentials
        # (ahead of the container endpoint) otherwise.
        "AWS_SDK_LOAD_CONFIG": "1",
        # The JavaScript SDK v2 and the Java SDKs go on down their chain when the endpoint answers
        # with an error (a renewal refused, an outage past expiry): on an EC2 agent the next link,
        # the instance metadata service, would hand them the instance role's credentials.
        "AWS_EC2_METADATA_DISABLED": "true",
        EXEC_MARKER: role,
    })
    return child


def refuse_java_credential_properties(env: Mapping[str, str]) -> None:
    """The Java SDKs read system properties ahead of the environment and the container endpoint
    (and `aws.disableEc2Metadata` over AWS_EC2_METADATA_DISABLED); a JVM the job starts may take
    them from any *OPTS or *OPTIONS variable (see _JAVA_CREDENTIAL_PROPERTIES). Refuse rather than
    start it with them."""
    for variable, text in sorted(env.items()):
        if not variable.upper().endswith(("OPTS", "OPTIONS")):
            continue
        for match in _JAVA_PROPERTY.finditer(text):
            name, value = match.group(1).lower(), (match.group(2) or "").lower()
            if name in _JAVA_CREDENTIAL_PROPERTIES or (name == "disableec2metadata" and value != "true"):
                raise CommandError(
                    "CredentialsElsewhere",
                    f"{variable} sets the Java system property aws.{match.group(1)}, which would let "
                    "the Java SDKs take credentials other than the ones stsvend serves: the job "
                    f"could act as someone else. Remove it from {variable} to run the job under stsvend",
                    EXIT_USAGE,
                )


def _profile_region(env: Mapping[str, str]) -> str | None:
    """The region of the profile the agent runs under, which the child's config file keeps."""
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    path = env.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    section = "default" if profile == "default" else f"profile {profile}"
    region = parser.get(section, "region", fallback="").strip()
    return region if _REGION.match(region) else None




# -- running the served child ---------------------------------------------------------------------


def _supervise(argv: list[str], environment: dict[str, str]) -> int:
    """Run the command with signals forwarded; its exit status, or minus the signal that ended it."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []
    terminal = _controlling_terminal()

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum in _FROM_THE_KEYBOARD and _in_the_foreground(terminal):
            return  # Ctrl-C, Ctrl-\: the terminal sent it to the child too (same process group)
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        child = _started(argv, lambda: subprocess.Popen(argv, env=environment))
        for signum in pending:
            child.send_signal(signum)
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if terminal is not None:
            os.close(terminal)


def _controlling_terminal() -> int | None:
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # no terminal: a CI runner, a service


def _in_the_foreground(terminal: int | None) -> bool:
    if terminal is None:
        return False
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False
