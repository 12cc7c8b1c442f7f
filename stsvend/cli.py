"""`stsvend` entry point. Only the standard library is imported here: a credential_process cache hit
must not pay for botocore. Each subcommand imports its module when it runs."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import SimpleNamespace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a cache hit counts every ms)
if TYPE_CHECKING:
    import argparse

# subcommand -> (module, function); the function takes the parsed args and returns an exit code.
_HANDLERS = {
    "credentials": ("stsvend.client", "cmd_credentials"),
    "exec": ("stsvend.client", "cmd_exec"),
    "roles": ("stsvend.client", "cmd_roles"),
    "whoami": ("stsvend.client", "cmd_whoami"),
    "grants": ("stsvend.admin", "cmd_grants"),
    "bootstrap": ("stsvend.admin", "cmd_bootstrap"),
    "trust-policy": ("stsvend.admin", "cmd_trust_policy"),
    "local": ("stsvend.local", "cmd_local"),
    # stsvend.ops.HANDLERS, spelled out: importing it would cost every credential_process cache hit
    "monitor": ("stsvend.ops.monitor", "cmd_monitor"),
    "audit": ("stsvend.ops.audit", "cmd_audit"),
    "revoke": ("stsvend.ops.revoke", "cmd_revoke"),
}


_CLIENT_EPILOG = """\
exit codes: 0 ok; 1 other failure; 2 usage or bad request (400, 413); 3 not authenticated or
denied (no AWS credentials, 401, 403, 502 AssumeRoleDenied); 4 service unavailable or
unreachable (503 after one retry, 429, other 502/504, network). exec exits with CMD's code.

cache: $XDG_CACHE_HOME/stsvend (default ~/.cache/stsvend), one 0600 file per API URL, caller,
role and options. The caller is $AWS_ACCESS_KEY_ID if set, else the profile name ($AWS_PROFILE,
else "default"): after switching identities under one profile name, delete that directory."""


# `credentials` is what credential_process runs on every AWS CLI call. Its common, well-formed
# argument lists are read here without argparse (importing it and building the parser is ~40% of a
# cache hit); anything else — help, abbreviations, a bad value, an unknown option — goes to
# argparse, which then also writes the error. tests/unit/test_cli.py holds the two to the same
# results for every argument list the fast path takes.
_FAST_VALUES = {
    "--api": "api",
    "--region": "region",
    "--role": "role",
    "--duration": "duration",
    "--tag": "tag",
    "--session-name": "session_name",
    "--format": "format",
    "--refresh-window": "refresh_window",
    "--server-id": "server_id",
}
_FAST_INTS = ("duration", "refresh_window")


def fast_credentials_args(argv: Sequence[str]) -> SimpleNamespace | None:
    if not argv or argv[0] != "credentials":
        return None
    values: dict[str, object] = {
        "command": "credentials",
        "api": None,
        "region": None,
        "server_id": None,
        "role": None,
        "duration": None,
        "session_name": None,
        "format": "process",
        "refresh_window": 300,
        "no_cache": False,
    }
    tags: list[str] = []
    tokens = list(argv[1:])
    while tokens:
        token = tokens.pop(0)
        if token == "--no-cache":
            values["no_cache"] = True
            continue
        name, has_value, value = token.partition("=")
        if name not in _FAST_VALUES:
            return None
        if not has_value:
            if not tokens or tokens[0].startswith("-"):
                return None
            value = tokens.pop(0)
        key = _FAST_VALUES[name]
        if key == "tag":
            tags.append(value)
        elif key in _FAST_INTS:
            if not (value.isascii() and value.isdigit()):
                return None
            values[key] = int(value)
        elif key == "format" and value not in ("process", "env", "json"):
            return None
        else:
            values[key] = value
    return SimpleNamespace(**values, tag=tags) if values["role"] is not None else None


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="the stsvend API URL (default: $STSVEND_API_URL)")
    parser.add_argument("--region", help="region to sign for (default: from the URL or environment)")
    parser.add_argument(
        "--server-id",
        help="the server id identity proofs name (default: $STSVEND_SERVER_ID, else the API URL's"
        " base; must have the API URL's scheme, host and port)",
    )


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="stsvend", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_parser(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, epilog=_CLIENT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    creds = client_parser("credentials", "get credentials for a role (credential_process)")
    _api_options(creds)
    creds.add_argument("--role", required=True, help="ARN of the role to assume")
    creds.add_argument("--duration", type=int, help="session duration in seconds (900-3600)")
    creds.add_argument("--tag", action="append", default=[], metavar="K=V", help="session tag")
    creds.add_argument("--session-name", help="suffix of the role session name")
    creds.add_argument("--format", choices=("process", "env", "json"), default="process")
    creds.add_argument(
        "--refresh-window",
        type=int,
        default=300,
        metavar="SECONDS",
        help="fetch anew when the cached credentials expire within this (default 300)",
    )
    creds.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")

    run = client_parser("exec", "run a command with credentials for a role")
    _api_options(run)
    run.add_argument("--role", required=True)
    run.add_argument("--duration", type=int)
    run.add_argument("--tag", action="append", default=[], metavar="K=V")
    run.add_argument("--session-name")
    run.add_argument("--refresh-window", type=int, default=300)
    run.add_argument("--no-cache", action="store_true")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    for name, text in (("roles", "list the roles you may request"), ("whoami", "who the service sees")):
        p = client_parser(name, text)
        _api_options(p)

    grants = sub.add_parser("grants", help="the allow-list as code: plan, apply, list")
    grants.add_argument("action", choices=("plan", "apply", "list"))
    grants.add_argument("--stage", required=True)
    grants.add_argument("--file", help="grants file (default: policies/grants/<stage>.json)")
    grants.add_argument("--table", help="table name (default: from .chalice/config.json)")
    grants.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")

    boot = sub.add_parser("bootstrap", help="create the grants table (idempotent)")
    boot.add_argument("--stage", required=True)
    boot.add_argument("--table", help="table name (default: from .chalice/config.json)")
    boot.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")

    trust = sub.add_parser("trust-policy", help="print the trust policy a target role needs")
    trust.add_argument("--service-role", required=True, help="ARN of stsvend's Lambda role")
    trust.add_argument("--external-id")
    trust.add_argument("--root", help="the stsvend checkout (default: found from the cwd)")

    local = sub.add_parser("local", help="the local stack: emulator + API on 127.0.0.1")
    local.add_argument("action", choices=("up", "demo"))

    from stsvend.ops import register as register_ops

    register_ops(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = fast_credentials_args(argv) or build_parser().parse_args(argv)
    module_name, function_name = _HANDLERS[args.command]
    handler = getattr(importlib.import_module(module_name), function_name)
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
