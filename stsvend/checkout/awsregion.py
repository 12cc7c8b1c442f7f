"""The AWS region of the admin and operator commands, resolved as the AWS SDKs and AWS CLI v2 do.

botocore reads only `AWS_DEFAULT_REGION` and the profile's `region`; the AWS CLI v2 and the SDKs for
Java, JavaScript, Go and .NET read `AWS_REGION` first. A guide that says `export AWS_REGION=...`
must therefore work for every stsvend command, and for what they run (`chalice deploy`, the AWS CLI
v1). The order here:

1. `AWS_REGION`,
2. `AWS_DEFAULT_REGION`,
3. the selected profile's `region` (`AWS_PROFILE`, else `default`), from the AWS config file;
   an IAM Identity Center (SSO) profile is no different: its `sso_region` is where the portal is,
   not a default for API calls, so it is not used (as in the SDKs).

The value comes from the environment or a file and is checked before use or print.
"""

from __future__ import annotations

import os
import re
from typing import Any

from stsvend.errors import EXIT_USAGE, CommandError

# Every public region's name: two to four letters, words, a number (us-gov-west-1, eu-central-2, ...).
REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]{2,12}){1,3}-[0-9]{1,2}")
ORDER = "AWS_REGION, AWS_DEFAULT_REGION, or the profile's region"


def _checked(value: str, source: str) -> str:
    if not (value.isascii() and REGION.fullmatch(value)):
        shown = value.encode("unicode_escape").decode("ascii")[:40]
        raise CommandError("InvalidRegion", f"{source} is not an AWS region name: {shown!r}", EXIT_USAGE)
    return value


def resolve(session: Any = None, environ: dict[str, str] | None = None) -> str | None:
    """The region, or None when none is set. `session` is a botocore session (one is made if none)."""
    env = os.environ if environ is None else environ
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name):
            return _checked(env[name], name)
    if session is None:
        import botocore.session

        session = botocore.session.get_session()
    from botocore.exceptions import ProfileNotFound

    try:
        found = session.get_scoped_config().get("region")
    except ProfileNotFound as exc:
        raise CommandError("NoSuchProfile", str(exc), EXIT_USAGE) from None
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


def session() -> Any:
    """A botocore session whose clients use the resolved region: the one way the checkout and
    operator commands make their AWS clients."""
    import botocore.session

    made = botocore.session.get_session()
    made.set_config_variable("region", required(made))
    return made


def child_environment(region: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a program that reads only AWS_DEFAULT_REGION (botocore: `chalice`, the
    AWS CLI v1): both variables set to the region resolved here."""
    env = dict(os.environ if environ is None else environ)
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    return env
