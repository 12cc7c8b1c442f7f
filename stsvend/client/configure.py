"""`stsvend configure`: one AWS config profile per role the caller may request (`GET /roles`).

Each profile is `[profile <prefix><role name>]` with a `credential_process` line that runs
`stsvend credentials` for that role and this API, and the region. The file is edited as text: a
profile this command wrote before (its first line is the marker comment) is replaced in place,
a new one is appended, and every other line of the file stays as it was, byte for byte. Running it
twice changes nothing the second time. A section of the same name that this command did not write
is refused, not overwritten. Role ARNs come from the server: each must be a plain IAM role ARN
before it goes into the file (no newline, bracket or space could start another section or line).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stsvend.arns import NAME_CHARS, ROLE_ARN
from stsvend.client.api import ApiClient, api_url, refuse_recursion, resolve_region, server_id_for
from stsvend.errors import EXIT_OTHER, EXIT_USAGE, CommandError

MARKER = "# written by stsvend configure; it rewrites this profile, edit the others freely"
# IAM's role ARN as the server checks it (stsvend/arns.py); its name is group 3.
_ROLE_ARN = ROLE_ARN
_PREFIX = re.compile(rf"{NAME_CHARS}{{0,32}}")
# As configparser (botocore) reads a header: up to the line's last `]`, whatever follows it.
_SECTION = re.compile(r"^\s*\[(.+)\]")
_SECRET_LINE = re.compile(
    r"([-+ ][ \t]*(?:aws_secret_access_key|aws_session_token|aws_security_token)[ \t]*[=:])",
    re.IGNORECASE,
)


def config_path(option: str | None, env: Mapping[str, str]) -> Path:
    return Path(option or env.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()


def profiles_for(
    answer: Any, api: str, region: str, prefix: str, command: Sequence[str],
    options: Sequence[str] = (), duration: int | None = None,
) -> dict[str, list[str]]:
    """profile name -> its lines (without the header), one per role the answer lists, in order.

    Each line asks for `duration`, else the role's MaxDurationSeconds: the longest credentials let
    a long-lived SDK client run stsvend about once per lifetime (docs/client-reference.md, "Refresh timing").
    """
    roles = answer.get("Roles") if isinstance(answer, dict) else None
    if not isinstance(roles, list):
        raise CommandError("InvalidAnswer", "GET /roles answered without a Roles list", EXIT_OTHER)
    arns: list[tuple[str, str, int | None]] = []
    for index, role in enumerate(roles):
        arn = role.get("RoleArn") if isinstance(role, dict) else None
        match = _ROLE_ARN.fullmatch(arn) if isinstance(arn, str) else None
        if match is None or not isinstance(arn, str):
            raise CommandError(
                "InvalidAnswer",
                f"role {index + 1} of GET /roles is not a valid IAM role ARN; nothing was written",
                EXIT_OTHER,
            )
        maximum = role.get("MaxDurationSeconds")
        valid = isinstance(maximum, int) and not isinstance(maximum, bool) and 900 <= maximum <= 43200
        arns.append((arn, match.group(3), maximum if valid else None))
    names = [name for _, name, _ in arns]
    profiles: dict[str, list[str]] = {}
    for arn, name, maximum in arns:
        # Two granted roles of one name (in two accounts): the account tells them apart.
        profile = prefix + (name if names.count(name) == 1 else f"{arn.split(':')[4]}-{name}")
        if profile == "default":
            # `[profile default]` is the default profile: every tool on the machine would use it.
            raise CommandError(
                "ProfileExists",
                f"role {arn} would be written as the default profile: choose a --prefix; nothing "
                "was written",
                EXIT_USAGE,
            )
        seconds = duration or maximum
        asked = ["--duration", str(seconds)] if seconds else []
        line = shlex.join([*command, "credentials", "--api", api, "--role", arn, *asked, *options])
        profiles[profile] = [MARKER, f"credential_process = {line}", f"region = {region}"]
    return profiles


def updated_config(text: str, profiles: Mapping[str, list[str]]) -> str:
    """`text` with each profile's section replaced (if this command wrote it) or appended."""
    lines = text.splitlines(keepends=True)
    sections: dict[str, tuple[int, int]] = {}  # profile name -> [start, end) line range
    current: str | None = None
    for number, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            words = match.group(1).split()
            current = words[1] if len(words) == 2 and words[0] == "profile" else None
            if current is not None:
                sections[current] = (number, number + 1)
        elif current is not None:
            sections[current] = (sections[current][0], number + 1)
    replaced: dict[int, tuple[int, list[str]]] = {}
    appended: list[str] = []
    for name, body in profiles.items():
        block = [f"[profile {name}]\n", *(f"{line}\n" for line in body)]
        if name in sections:
            start, end = sections[name]
            if lines[start + 1 : start + 2] != [MARKER + "\n"]:
                raise CommandError(
                    "ProfileExists",
                    f"profile {name!r} exists and was not written by stsvend configure: choose "
                    "another --prefix or remove it; nothing was written",
                    EXIT_USAGE,
                )
            # Keep the blank lines that separated the old section from the next one.
            while end > start + 1 and not lines[end - 1].strip():
                end -= 1
            replaced[start] = (end, block)
        else:
            appended.extend(["\n", *block] if lines or appended else block)
    output: list[str] = []
    number = 0
    while number < len(lines):
        if number in replaced:
            end, block = replaced[number]
            output.extend(block)
            number = end
        else:
            output.append(lines[number])
            number += 1
    if appended and output and not output[-1].endswith("\n"):
        output.append("\n")
    return "".join(output + appended)


def _redacted(line: str) -> str:
    """A diff line with the value of a secret key (the AWS files' names for them) left out."""
    match = _SECRET_LINE.match(line)
    if match is None:
        return line
    return f"{match.group(1)} <redacted>" + ("\n" if line.endswith("\n") else "")


def write_atomically(path: Path, text: str) -> None:
    # A symlinked config file (kept with dotfiles) is written where it points, and stays a link.
    path = Path(os.path.realpath(path))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".stsvend-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cmd_configure(args: Any) -> int:
    env = os.environ
    refuse_recursion(env)
    url = api_url(args.api, env)
    region = resolve_region(args.region, url, env)
    if _PREFIX.fullmatch(args.prefix) is None:
        raise CommandError("InvalidRequest", "--prefix takes up to 32 of [A-Za-z0-9_+=,.@-]", EXIT_USAGE)
    command = shlex.split(args.stsvend_command)
    if not command:
        raise CommandError("InvalidRequest", "--command must name a command", EXIT_USAGE)
    options: list[str] = []
    if args.source_profile:
        options += ["--source-profile", args.source_profile]
    if args.server_id:
        options += ["--server-id", server_id_for(url, args.server_id, env)]
    answer = ApiClient(url, region, env, server_id=args.server_id,
                       source_profile=args.source_profile).call("GET", "/roles")
    profiles = profiles_for(answer, url, region, args.prefix, command, options, args.duration)
    path = config_path(args.config_file, env)
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeError) as exc:
        raise CommandError("ConfigUnreadable", f"{path}: {exc}", EXIT_OTHER) from None
    new = updated_config(old, profiles)
    if args.dry_run:
        # Only the changed lines, and no secret among them: the file may hold keys, and a dry
        # run's output may go to a CI log.
        sys.stdout.writelines(_redacted(line) for line in difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), str(path), str(path), n=0
        ))
        return 0
    if new != old:
        try:
            write_atomically(path, new)
        except OSError as exc:
            raise CommandError("ConfigUnwritable", f"{path}: {exc.strerror or exc}", EXIT_OTHER) from None
    state = "wrote" if new != old else "unchanged:"
    print(f"{state} {len(profiles)} profile(s) in {path}: {', '.join(profiles)}")
    return 0
