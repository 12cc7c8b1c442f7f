"""What `monitor`, `audit` and `revoke` share: their errors (the command's one `CommandError`), input
checks, safe printing, the stage's names and the AWS clients they use."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stsvend import arns, aws, contract
from stsvend.checkout.checkout import Checkout
from stsvend.checkout.local_state import read_state
from stsvend.constants import TIMESTAMP_FORMAT
from stsvend.errors import EXIT_OTHER, EXIT_USAGE, CommandError

# ARNs and account ids have one definition, the server's (stsvend/arns.py is chalicelib/arns.py).
# The caller as stsvend records it (`caller_principal`, the `stsvend:caller` tag): role or user, no path.
ROLE_ARN, PRINCIPAL_ARN, SNS_TOPIC_ARN = arns.ROLE_ARN, arns.PRINCIPAL_ARN, arns.SNS_TOPIC_ARN
# API Gateway's request ids are UUIDs; `chalice local` makes its own. Quotes and backslashes are
# excluded either way: the id goes into Logs Insights and SQL text.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{7,63}")
ACCESS_KEY_ID = re.compile(r"A(?:SIA|KIA)[A-Z0-9]{12,124}")
STAGE = re.compile(r"[a-z][a-z0-9-]{0,31}")
# The stable codes of a denial (docs/api.md), as the command's contract lists them.
DENIAL_CODES = contract.DENIAL_CODES
# AssumeRole from the Lambda's role is role chaining, capped at 1 h; a role granted in web-identity
# mode (chalicelib.idp) may hold a session up to IAM's 12-hour maximum. Revocations are kept, and
# sessions looked for, that long.
LONGEST_SESSION_SECONDS = 43200
_RELATIVE = re.compile(r"([0-9]{1,6})([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_LOOKBACK = timedelta(days=455)  # past the prod log group's 400-day retention


def failure(code: str, message: str) -> CommandError:
    """The command's one error type, exit 1. The message may quote a log or AWS: `main()` prints it
    through stsvend.terminal."""
    return CommandError(code, message, EXIT_OTHER)


def bad_input(message: str) -> CommandError:
    return CommandError("InvalidArgument", message, EXIT_USAGE)


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, AWS's refusals and unreachability raised as the command's error (stsvend.aws)."""
    try:
        with aws.errors():
            return command(args)
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and none when Python flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OTHER


# --- input checks ----------------------------------------------------------------------------------


def _checked(pattern: re.Pattern[str], value: str, option: str, what: str) -> str:
    """`value` if the whole of it matches `pattern`, else a usage error naming `option` and `what`
    it must be (the value quoted with repr: escaped, never sent to the terminal as it is)."""
    if not pattern.fullmatch(value):
        raise bad_input(f"{option} must be {what}, not {value!r}")
    return value


def role_arn(value: str, option: str = "--role") -> str:
    return _checked(ROLE_ARN, value, option, "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")


def caller_arn(value: str) -> str:
    """The caller as stsvend tags it, reduced as the server reduces a caller's ARN: an assumed-role
    session ARN to its role, a path dropped (stsvend matches and tags callers by account + name)."""
    caller = arns.parse_caller_arn(value)
    if caller is not None and PRINCIPAL_ARN.fullmatch(caller.principal_arn):
        return caller.principal_arn
    raise bad_input(f"--caller must be an IAM role or user ARN or an assumed-role session ARN, not {value!r}")


_TAG_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/+-@")


def caller_tag_value(caller: str) -> str:
    """The `stsvend:caller` tag value of a caller ARN, escaped as the service escapes it
    (docs/decisions.md, "What STS is sent"): `=` as `=3D`, `,` as `=2C`; tests/unit/test_ops_audit.py
    holds the two together."""
    return "".join(ch if ch in _TAG_SAFE else "".join(f"={b:02X}" for b in ch.encode()) for ch in caller)


def request_id(value: str) -> str:
    return _checked(REQUEST_ID, value, "--request-id", "8-64 letters, digits and dashes (a UUID)")


def access_key_id(value: str) -> str:
    return _checked(ACCESS_KEY_ID, value, "--access-key-id", "an AWS access key id (ASIA... or AKIA...)")


def denial_code(value: str) -> str:
    if value not in DENIAL_CODES:
        raise bad_input(f"--code must be one of {', '.join(DENIAL_CODES)}; not {value!r}")
    return value


def stage_name(value: str) -> str:
    return _checked(STAGE, value, "--stage", "a stage name such as dev or prod")


def topic_arn(value: str) -> str:
    return _checked(
        SNS_TOPIC_ARN, value, "--alarm-topic", "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
    )


def parse_time(value: str, option: str, now: datetime) -> datetime:
    """`15m`, `2h`, `7d` (before now) or an ISO 8601 time; a time without a zone is UTC."""
    if match := _RELATIVE.fullmatch(value):
        span = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
        if span > MAX_LOOKBACK:
            raise bad_input(f"{option} {value} is more than {MAX_LOOKBACK.days} days ago")
        when = now - span
    else:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise bad_input(
                f"{option} must be a duration before now (15m, 2h, 7d) or an ISO 8601 time"
                f" (2026-12-01T10:00:00Z), not {value!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    if when > now + timedelta(minutes=5):
        raise bad_input(f"{option} {value} is in the future")
    if now - when > MAX_LOOKBACK:
        raise bad_input(f"{option} {value} is more than {MAX_LOOKBACK.days} days ago")
    return when.astimezone(timezone.utc)


def utc_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


# --- the stage, and AWS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageNames:
    """What `chalice deploy` names for a stage (docs/deploying.md, "What a stage deploys")."""

    stage: str
    function_name: str
    api_name: str
    api_stage: str
    log_group: str
    timeout_seconds: int


def find_checkout(root: str | None) -> Path:
    """The checkout's directory (`--root`, else found from the cwd), without loading its code."""
    return Path(root).resolve() if root else Checkout.find(Path.cwd())


def stage_names(checkout: Checkout, stage: str) -> StageNames:
    config = checkout.config
    checkout.stage_environment(stage)  # the stage exists, or NoSuchStage
    settings = config["stages"][stage]
    app_name = str(config.get("app_name", "stsvend"))
    from stsvend.checkout.names import chalice_names

    function, _ = chalice_names(app_name, stage)
    # Chalice's default timeout, when a stage sets none, is 60 s.
    timeout = int(settings.get("lambda_timeout", config.get("lambda_timeout", 60)))
    return StageNames(
        stage=stage,
        function_name=function,
        api_name=app_name,
        api_stage=str(settings.get("api_gateway_stage", config.get("api_gateway_stage", "api"))),
        log_group=f"/aws/lambda/{function}",
        timeout_seconds=timeout,
    )


LOCAL_STAGE = "local"


def local_state(root: Path) -> dict[str, Any]:
    """The local stack's `local.json` (stsvend.checkout.local_state, which stsvend/local writes)."""
    return read_state(root)


def region() -> str:
    """The ambient region, as the AWS SDKs resolve it (stsvend.aws)."""
    return aws.required()


class Aws:
    """AWS clients: the ambient credentials and region, or for `--stage local` the local stack's
    emulator as its `admin` identity (so nothing of the local stage ever reaches real AWS)."""

    def __init__(self, local: dict[str, Any] | None = None) -> None:
        self.local = local
        self._session: Any = None

    @classmethod
    def for_stage(cls, root: str | None, stage: str | None) -> Aws:
        if stage == LOCAL_STAGE:
            return cls(local_state(find_checkout(root)))
        return cls()

    def client(self, service: str) -> Any:
        if self.local is None:
            if self._session is None:
                self._session = aws.session()
            return self._session.create_client(service)
        admin = self.local["identities"]["admin"]
        return aws.emulator_client(
            service,
            self.local["emulator_url"],
            admin["access_key_id"],
            admin["secret_access_key"],
            region=self.local["region"],
        )
