"""AWS from the command: the one place the checkout, operator and local-stack commands get their
AWS region, sessions and clients, and the one translation of AWS's errors into a `CommandError`
(docs/architecture.md). stsvend/client never imports it: the client signs its own requests and must
not load botocore on the cache hit.

The region is resolved as the AWS SDKs and AWS CLI v2 do. botocore reads only `AWS_DEFAULT_REGION`
and the profile's `region`; the AWS CLI v2 and the SDKs for Java, JavaScript, Go and .NET read
`AWS_REGION` first. A guide that says `export AWS_REGION=...` must therefore work for every stsvend
command, and for what they run (`chalice deploy`, the AWS CLI v1). The order here:

1. `AWS_REGION`,
2. `AWS_DEFAULT_REGION`,
3. the selected profile's `region` (`AWS_PROFILE`, else `default`), from the AWS config file;
   an IAM Identity Center (SSO) profile is no different: its `sso_region` is where the portal is,
   not a default for API calls, so it is not used (as in the SDKs).

The value comes from the environment or a file and is checked before use or print.

Retries: the SDKs' `standard` mode (three attempts in all, exponential backoff with jitter, throttling
and transient errors retried), as the AWS CLI v2 and the newer SDKs use by default; botocore alone
would use its `legacy` mode. A user's own `AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS` or profile
`retry_mode`/`max_attempts` still decides, as in the SDKs.

Nothing of botocore is imported until a session is made: `stsvend --help` and the parsers do not
load it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from stsvend.errors import EXIT_OTHER, EXIT_USAGE, CommandError
from stsvend.terminal import aws_message

# Every public region's name: two to four letters, words, a number (us-gov-west-1, eu-central-2, ...).
REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]{2,12}){1,3}-[0-9]{1,2}")
ORDER = "AWS_REGION, AWS_DEFAULT_REGION, or the profile's region"
RETRY_MODE = "standard"
# An emulator on this machine either accepts a connection at once or is not running; a slow answer
# is a busy machine (moto loads a service's backend on its first request), not an outage.
EMULATOR_CONNECT_TIMEOUT = 2
EMULATOR_READ_TIMEOUT = 60

T = TypeVar("T")


# --- the region --------------------------------------------------------------------------------------


def _checked(value: str, source: str) -> str:
    if not (value.isascii() and REGION.fullmatch(value)):
        shown = value.encode("unicode_escape").decode("ascii")[:40]
        raise CommandError("InvalidRegion", f"{source} is not an AWS region name: {shown!r}", EXIT_USAGE)
    return value


def _scoped_config(session: Any) -> dict[str, Any]:
    from botocore.exceptions import ProfileNotFound

    try:
        return dict(session.get_scoped_config())
    except ProfileNotFound as exc:
        raise CommandError("NoSuchProfile", str(exc), EXIT_USAGE) from None


def resolve(session: Any = None, environ: dict[str, str] | None = None) -> str | None:
    """The region, or None when none is set. `session` is a botocore session (one is made if none)."""
    env = os.environ if environ is None else environ
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name):
            return _checked(env[name], name)
    if session is None:
        session = _botocore_session()
    found = _scoped_config(session).get("region")
    return _checked(str(found), "the profile's region") if found else None


def required(session: Any = None) -> str:
    found = resolve(session)
    if found is None:
        raise CommandError(
            "NoRegion",
            f"no AWS region: set {ORDER} (export AWS_REGION=eu-west-1, or region = ... in ~/.aws/config)",
            EXIT_USAGE,
        )
    return found


def child_environment(region: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a program that reads only AWS_DEFAULT_REGION (botocore: `chalice`, the
    AWS CLI v1): both variables set to the region resolved here."""
    env = dict(os.environ if environ is None else environ)
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    return env


# --- sessions and clients ----------------------------------------------------------------------------


def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.Session()


def _with_retries(session: Any) -> Any:
    """The session's clients retry in RETRY_MODE unless the user chose a mode (environment or profile)."""
    if not (os.environ.get("AWS_RETRY_MODE") or _scoped_config(session).get("retry_mode")):
        session.set_config_variable("retry_mode", RETRY_MODE)
    return session


def session() -> Any:
    """A botocore session with the ambient credentials, whose clients use the resolved region and the
    one retry configuration: how the checkout and operator commands make their AWS clients."""
    made = _botocore_session()
    made.set_config_variable("region", required(made))
    return _with_retries(made)


def emulator_client(
    service: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    session_token: str | None = None,
) -> Any:
    """A client of the local stack's emulator with the given (emulator-only) keys: never the ambient
    credentials, so nothing meant for the emulator reaches real AWS."""
    from botocore.config import Config

    return _with_retries(_botocore_session()).create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=Config(connect_timeout=EMULATOR_CONNECT_TIMEOUT, read_timeout=EMULATOR_READ_TIMEOUT),
    )


def operation_names(service_model: str) -> frozenset[str]:
    """The operation names of an AWS service, as botocore's model spells them."""
    return frozenset(_botocore_session().get_service_model(service_model).operation_names)


# --- AWS's errors ------------------------------------------------------------------------------------


def error_code(exc: BaseException) -> str | None:
    """The code of AWS's refusal (botocore's ClientError: `AccessDenied`, `NoSuchEntity`, ...), or
    None for any other exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error")
    return str(error.get("Code")) if isinstance(error, dict) and error.get("Code") is not None else None


def unless_refused(call: Callable[[], T], *codes: str) -> T | None:
    """`call()`, or None when AWS refuses it with one of `codes` (another refusal propagates)."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


@contextmanager
def errors() -> Iterator[None]:
    """AWS's refusals (`AwsRefused`) and unreachability (`AwsUnreachable`) as the command's one error
    type, exit 1; the message may quote AWS: `main()` prints it through stsvend.terminal."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = aws_message(str(error.get("Message")))  # never what AWS quoted of the request
        refusal = f"AWS refused {exc.operation_name}: {error.get('Code')}: {message}"
        raise CommandError("AwsRefused", refusal, EXIT_OTHER) from None
    except BotoCoreError as exc:
        raise CommandError("AwsUnreachable", f"AWS could not be reached: {aws_message(str(exc))}",
                           EXIT_OTHER) from None
