"""`stsvend`: credentials for AWS roles from the stsvend API, the grants that allow them, and a local
stack to try it all. Only the standard library is imported here: a credential_process cache hit must
not pay for botocore. Each subcommand imports its module when it runs."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from stsvend.errors import CommandError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a cache hit counts every ms)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    Option = tuple[str, str, str, object, str | None, str]

# subcommand -> (module, function); the function takes the parsed args and returns an exit code.
_HANDLERS = {
    "credentials": ("stsvend.client.commands", "cmd_credentials"),
    "exec": ("stsvend.client.exec", "cmd_exec"),
    "serve": ("stsvend.client.credserver", "cmd_serve"),
    "roles": ("stsvend.client.commands", "cmd_roles"),
    "whoami": ("stsvend.client.commands", "cmd_whoami"),
    "console": ("stsvend.client.console", "cmd_console"),
    "cache": ("stsvend.client.commands", "cmd_cache"),
    "configure": ("stsvend.client.configure", "cmd_configure"),
    "doctor": ("stsvend.client.doctor", "cmd_doctor"),
    "grants": ("stsvend.checkout.commands", "cmd_grants"),
    "bootstrap": ("stsvend.checkout.commands", "cmd_bootstrap"),
    "trust-policy": ("stsvend.checkout.commands", "cmd_trust_policy"),
    "local": ("stsvend.local", "cmd_local"),
    # The operator commands (stsvend/ops, whose `register` adds their parsers): named here, not
    # imported from there, so that a credential_process cache hit never loads stsvend.ops.
    "monitor": ("stsvend.ops.monitor", "cmd_monitor"),
    "audit": ("stsvend.ops.audit", "cmd_audit"),
    "revoke": ("stsvend.ops.revoke", "cmd_revoke"),
    "deploy-info": ("stsvend.ops.deployment", "cmd_deploy_info"),
    "deploy": ("stsvend.ops.deployment", "cmd_deploy"),
    "rollback": ("stsvend.ops.deployment", "cmd_rollback"),
}

_CLIENT_EPILOG = """\
exit codes: 0 ok; 1 other failure; 2 usage or bad request (400, 413); 3 not authenticated or
denied (no AWS credentials, 401, 403, 502 AssumeRoleDenied); 4 service unavailable or
unreachable (503 after one retry, 429, other 502/504, network). exec exits with CMD's code.
When a tool hides stsvend's message: `stsvend doctor --profile NAME` shows each step and the last
failure.

cache: $XDG_CACHE_HOME/stsvend (default ~/.cache/stsvend), one 0600 file per API URL, caller,
role and options. The caller is $AWS_ACCESS_KEY_ID if set, else the profile and the AWS config
and credentials files as they are: after switching identities otherwise, `stsvend cache clear`."""

_CHECKOUT = "an stsvend checkout (found from the current directory, or --root)"

# The options of the client commands; `credentials`' are read by the parser and the fast path:
# (option, dest, kind, default, metavar, help). Kinds: "text", "int", "tag" (repeatable K=V), "flag".
API_OPTIONS = (
    ("--api", "api", "text", None, "URL", "the stsvend API URL (default: $STSVEND_API_URL)"),
    (
        "--region", "region", "text", None, "REGION",
        "region to sign for (default: from the URL or environment)",
    ),
    (
        "--server-id", "server_id", "text", None, "SERVER_ID",
        "the server id identity proofs name (default: $STSVEND_SERVER_ID, else the API URL's base;"
        " must have the API URL's scheme, host and port)",
    ),
    (
        "--source-profile", "source_profile", "text", None, "NAME",
        "the AWS profile holding this machine's own credentials, as the CLI's source_profile"
        " (default: the selected profile, or the chain without it if it runs stsvend)",
    ),
)
ROLE_OPTIONS = (
    ("--role", "role", "text", None, "ARN", "ARN of the role to assume (required)"),
    ("--duration", "duration", "int", None, "SECONDS",
     "session duration in seconds (900-3600; up to 43200 for a role granted in web-identity mode)"),
    ("--tag", "tag", "tag", None, "K=V", "session tag (repeatable)"),
    ("--session-name", "session_name", "text", None, "NAME", "suffix of the role session name"),
)
# A CI job without AWS credentials: its OIDC token instead (POST /oidc/credentials, docs/ci-oidc.md).
OIDC_OPTIONS = (
    ("--oidc-token-file", "oidc_token_file", "text", None, "PATH",
     "use the CI job's OIDC token in PATH (read again for every vend) instead of AWS credentials"),
    ("--oidc-token-env", "oidc_token_env", "text", None, "VAR",
     "use the CI job's OIDC token in environment variable VAR instead of AWS credentials"),
    ("--github-actions", "github_actions", "flag", False, None,
     "ask the GitHub Actions runner for an OIDC token (needs permissions: id-token: write)"),
    ("--oidc-audience", "oidc_audience", "text", None, "AUD",
     "with --github-actions: the token's audience (default: $STSVEND_OIDC_AUDIENCE, else stsvend)"),
)
CREDENTIAL_OPTIONS = (
    *API_OPTIONS,
    *ROLE_OPTIONS,
    *OIDC_OPTIONS,
    (
        "--refresh-window", "refresh_window", "int", None, "SECONDS",
        "fetch anew when the cached credentials expire within this (default: 16 minutes, the SDKs'"
        " window, at most a third of their lifetime)",
    ),
    ("--no-cache", "no_cache", "flag", False, None, "neither read nor write the cache"),
)
# `exec` and `serve` vend again before expiry; `exec --env` hands keys over, from the cache.
SERVED_OPTIONS = (
    *API_OPTIONS,
    *ROLE_OPTIONS,
    *OIDC_OPTIONS,
    (
        "--refresh-window", "refresh_window", "int", None, "SECONDS",
        "vend anew when the credentials expire within this, below the duration (default: 16"
        " minutes, at most half their life; with exec --env: the cache's window, at least half"
        " the duration)",
    ),
)
EXEC_OPTIONS = (
    *SERVED_OPTIONS,
    ("--env", "env", "flag", False, None,
     "put the keys in CMD's environment instead of serving them (they do not renew)"),
    ("--no-cache", "no_cache", "flag", False, None, "with --env: neither read nor write the cache"),
)
FORMATS = ("process", "env", "json")


# `credentials` is what credential_process runs on every AWS CLI call. Its common, well-formed
# argument lists are read here without argparse (importing it and building the parser would be most
# of a cache hit's own time); anything else — help, abbreviations, a bad value, an unknown option —
# goes to argparse, which then also writes the error. tests/unit/test_cli.py holds the two to the same
# results for every argument list the fast path takes.
def fast_credentials_args(argv: Sequence[str]) -> SimpleNamespace | None:
    if not argv or argv[0] != "credentials":
        return None
    options = {option: (dest, kind) for option, dest, kind, _, _, _ in CREDENTIAL_OPTIONS}
    options["--format"] = ("format", "format")
    values: dict[str, object] = {"command": "credentials", "format": "process"}
    values.update((dest, default) for _, dest, kind, default, _, _ in CREDENTIAL_OPTIONS if kind != "tag")
    tags: list[str] = []
    tokens = list(argv[1:])
    while tokens:
        name, has_value, value = tokens.pop(0).partition("=")
        if name not in options:
            return None
        key, kind = options[name]
        if kind == "flag":
            if has_value:
                return None
            values[key] = True
            continue
        if not has_value:
            if not tokens or tokens[0].startswith("-"):
                return None
            value = tokens.pop(0)
        if kind == "tag":
            tags.append(value)
        elif kind == "int":
            if not (value.isascii() and value.isdigit()):
                return None
            values[key] = int(value)
        elif kind == "format" and value not in FORMATS:
            return None
        else:
            values[key] = value
    return SimpleNamespace(**values, tag=tags) if values["role"] is not None else None


def _add_options(parser: argparse.ArgumentParser, table: Sequence[Option]) -> None:
    for option, dest, kind, default, metavar, text in table:
        if kind == "flag":
            parser.add_argument(option, dest=dest, action="store_true", help=text)
        elif kind == "tag":
            parser.add_argument(option, dest=dest, action="append", default=[], metavar=metavar, help=text)
        else:
            parser.add_argument(
                option, dest=dest, type=int if kind == "int" else str, default=default, metavar=metavar,
                help=text, required=dest == "role",
            )


# The commands of the one-file client (`make client-zipapp`): no checkout, local stack or ops code.
CLIENT_COMMANDS = (
    "credentials", "exec", "serve", "roles", "whoami", "cache", "configure", "doctor",
)


def build_parser(client_only: bool = False) -> argparse.ArgumentParser:
    import argparse

    from stsvend.constants import __version__

    parser = argparse.ArgumentParser(
        prog="stsvend",
        description=__doc__.split(". Only")[0] + ".",
        epilog="the one-file client: only the client commands" if client_only else
        "[checkout]: grants, bootstrap, trust-policy, local, monitor, deploy, deploy-info and"
        f" rollback need {_CHECKOUT}; the"
        " others work from an installed stsvend (audit --stage reads a stage's log group name from one).",
    )
    parser.add_argument("--version", action="version", version=f"stsvend {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_parser(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, epilog=_CLIENT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", help="the stsvend checkout (default: found from the current directory)")

    def checkout_parser(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=[root], help=f"{text} [checkout]", description=f"{text}; needs {_CHECKOUT}."
        )

    creds = client_parser("credentials", "get credentials for a role (credential_process)")
    _add_options(creds, CREDENTIAL_OPTIONS)
    creds.add_argument("--format", choices=FORMATS, default="process", help="output format (default process)")

    run = client_parser("exec", "run a command with credentials for a role that renew while it runs")
    _add_options(run, EXEC_OPTIONS)
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command to run")
    serve = client_parser("serve", "serve renewing credentials for a role to local tools")
    _add_options(serve, SERVED_OPTIONS)
    serve.add_argument(
        "--env-file", metavar="PATH",
        help="write the two export lines (they hold the endpoint's token) to PATH, a new file only"
        " you can read, removed when serve stops; without it they go to stdout, which must not be a"
        " file others can read",
    )

    console = client_parser("console", "open the AWS console as a role (sign-in URL from vended credentials)")
    _add_options(console, (*API_OPTIONS, *ROLE_OPTIONS))
    console.add_argument("--print", action="store_true",
                         help="print the sign-in URL (it signs in whoever opens it, once, within 15 minutes)"
                         " instead of opening a browser")

    for name, text in (("roles", "list the roles you may request"), ("whoami", "who the service sees")):
        _add_options(client_parser(name, text), API_OPTIONS)

    cache = sub.add_parser("cache", help="the credential cache: clear forgets every cached answer")
    cache.add_argument("action", choices=("clear",))

    configure = client_parser(
        "configure", "write an AWS config profile for every role you may request (GET /roles)"
    )
    _add_options(configure, API_OPTIONS)
    configure.add_argument("--config-file", metavar="PATH",
                           help="the AWS config file (default: $AWS_CONFIG_FILE, else ~/.aws/config)")
    configure.add_argument("--prefix", default="stsvend-", metavar="TEXT",
                           help="profile names are TEXT + the role name (default stsvend-)")
    configure.add_argument("--duration", type=int, metavar="SECONDS",
                           help="--duration for each credential_process line (default: each role's maximum)")
    configure.add_argument("--command", dest="stsvend_command", default=None, metavar="CMD",
                           help="how the profiles run stsvend (default: this stsvend, by the absolute"
                           " path it was started from, so it runs from any PATH)")
    configure.add_argument("--dry-run", action="store_true",
                           help="print the diff, write nothing")

    doctor = sub.add_parser(
        "doctor", help="why a profile's stsvend credentials do or do not come, step by step",
        description="Follow a profile's credential_process as a run of it would (with AWS_PROFILE"
        " naming the profile), explain each step, and show the last failure recorded.",
    )
    doctor.add_argument("--profile", metavar="NAME",
                        help="the profile (default: $AWS_PROFILE, else $AWS_DEFAULT_PROFILE, else default)")

    if client_only:
        return parser

    grants = checkout_parser("grants", "the allow-list as code: plan, apply, list")
    grants.add_argument("action", choices=("plan", "apply", "list"))
    grants.add_argument("--stage", required=True)
    grants.add_argument("--file", help="grants file (default: policies/grants/<stage>.json)")
    grants.add_argument("--table", help="table name (default: from .chalice/config.json)")

    boot = checkout_parser("bootstrap", "create the grants table (idempotent)")
    boot.add_argument("--stage", required=True)
    boot.add_argument("--table", help="table name (default: from .chalice/config.json)")

    trust = checkout_parser("trust-policy", "print the trust policy a target role needs")
    trust.add_argument("--service-role", help="ARN of stsvend's Lambda role (required in assume-role mode)")
    trust.add_argument("--external-id", help="the external id the role's grants require (default: none)")
    trust.add_argument("--allowed-caller", action="append", default=[], metavar="PATTERN",
                       help="a pattern of the callers (the stsvend:caller session tag) whose sessions the"
                       " role admits (repeatable; default: arn:*, every IAM caller the grants allow);"
                       " OIDC callers are admitted only by an oidc: pattern, e.g. oidc:github:*")
    trust.add_argument("--merge", metavar="FILE",
                       help="merge stsvend's statements into this trust policy: the diff on stderr, the"
                       " merged policy on stdout (other principals' statements kept)")
    trust.add_argument("--role-name", metavar="NAME",
                       help="merge into this role's trust policy in the ambient account: show the diff")
    trust.add_argument("--apply", action="store_true", help="with --role-name: write the merged policy")
    trust.add_argument("--web-identity", action="store_true",
                       help="for a role granted in web-identity mode: trust the service's issuer"
                       " (needs --issuer, --role)")
    trust.add_argument("--issuer", metavar="URL", help="the service's issuer URL (STSVEND_ISSUER_URL)")
    trust.add_argument("--role", metavar="ARN", help="the target role (its account holds the OIDC provider)")
    trust.add_argument("--grant", action="append", default=[], metavar="PRINCIPAL",
                       help="a grant principal the token's sub must name (repeatable; default: any grant)")
    trust.add_argument("--audience", default="stsvend", help="the tokens' aud (STSVEND_TOKEN_AUDIENCE)")
    trust.add_argument("--format", choices=("policy", "cloudformation"), default="policy",
                       help="with --web-identity: the trust policy, or a template with the OIDC provider")

    local = checkout_parser("local", "the local stack: emulator + API on 127.0.0.1 (needs the dev extras)")
    local.add_argument("action", choices=("up", "demo", "token"))
    local.add_argument("--issuer", help="token: the local OIDC issuer (oidc_issuers in .stsvend/local.json)")
    local.add_argument("--claims", default="{}", help="token: JSON object of claims (null removes one)")
    local.add_argument("--audience", help="token: the aud claim (default: the local stage's audience)")

    from stsvend.ops import register as register_ops

    register_ops(sub)
    return parser


def main(argv: Sequence[str] | None = None, client_only: bool = False) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = fast_credentials_args(argv) or build_parser(client_only).parse_args(argv)
    module_name, function_name = _handler(args.command)
    try:
        root = getattr(args, "root", None)
        if root is not None and module_name.startswith("stsvend.checkout."):
            # The checkout named by --root, opened before the command's modules are imported: they
            # import the server's grant model from the checkout already open, never from the cwd's.
            from stsvend.checkout.checkout import Checkout

            Checkout.open(root)
        # __import__, not importlib.import_module: importing importlib would cost every cache hit.
        __import__(module_name)
        handler = getattr(sys.modules[module_name], function_name)
        return int(handler(args))
    except CommandError as exc:
        print(exc.line(), file=sys.stderr)
        if args.command == "credentials":  # tools that run it often hide this line: say where to look
            print(doctor_hint(), file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback that could hold a secret
        print(f"stsvend: InternalError: unexpected {type(exc).__name__} (please report it)",
              file=sys.stderr)
        if args.command == "credentials":
            print(doctor_hint(), file=sys.stderr)
        return 1


def _handler(command: str) -> tuple[str, str]:
    return _HANDLERS[command]


def doctor_hint() -> str:
    """The second line of a failed `credentials` run: the command that shows why, for the profile
    a credential_process run was selected by (AWS_PROFILE). A name that is not a plain profile name
    is not printed (it came from the environment, unvalidated): doctor then asks for one."""
    profile = os.environ.get("AWS_PROFILE", "")
    if not profile:
        return "stsvend: see why: stsvend doctor"
    if len(profile) > 128 or profile.startswith("-") or not set(profile) <= _PLAIN_PROFILE:
        return "stsvend: see why: stsvend doctor --profile NAME (the profile AWS_PROFILE names)"
    return f"stsvend: see why: stsvend doctor --profile {profile}"


# Characters a shell passes through unquoted: the hint is a command to copy.
_PLAIN_PROFILE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+=,:/-")


if __name__ == "__main__":
    sys.exit(main())
