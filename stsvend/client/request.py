"""What the client asks for: the POST /credentials body from the command's options, and whether a
CI job's OIDC token stands in for this machine's AWS identity. The cache hit loads this (the body
is part of the cache key): only the standard library, and nothing of it imported here."""

from __future__ import annotations

from stsvend.errors import EXIT_USAGE, CommandError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from typing import Any


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError("InvalidTag", f"--tag takes KEY=VALUE, not {pair!r}", EXIT_USAGE)
        if key in tags:
            raise CommandError("InvalidTag", f"tag {key!r} is given twice", EXIT_USAGE)
        tags[key] = value
    return tags


def credential_request(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /credentials body; only what the user set."""
    body: dict[str, Any] = {"role_arn": args.role}
    if args.duration is not None:
        body["duration_seconds"] = args.duration
    tags = parse_tags(args.tag)
    if tags:
        body["tags"] = tags
    if args.session_name is not None:
        body["session_name"] = args.session_name
    return body


def oidc_requested(args: argparse.Namespace) -> bool:
    """Whether an OIDC option was given (stsvend.client.oidc, loaded only then, checks them)."""
    return (
        getattr(args, "oidc_token_file", None) is not None
        or getattr(args, "oidc_token_env", None) is not None
        or bool(getattr(args, "github_actions", False))
    )
