"""`stsvend configure`: one AWS config profile per role the caller may request (`GET /roles`).

Each profile is `[profile <prefix><role name>]` with a `credential_process` line that runs
`stsvend credentials` for that role and this API, and the region. The file is edited as text: a
profile this command wrote before (its first line is the marker comment) is replaced in place,
a new one is appended, and every other line of the file stays as it was, byte for byte. Running it
twice changes nothing the second time. A section of the same name that this command did not write
is refused, not overwritten. Role ARNs come from the server: each must be a plain IAM role ARN
before it goes into the file (no newline, bracket or space could start another section or line).

Profile names are unique and stable: a profile this command wrote keeps its name for as long as
its role is granted; a new role gets `<prefix><role name>`, else (that name is another role's, or
the name is granted in two accounts) `<prefix><account>-<role name>`, else a name with a digest of
its ARN; a name that would change which role a profile vends is refused, never overwritten.

The lines run this very stsvend (`own_command`: this Python by its absolute path, isolated, calling
stsvend's entry point; checked by running it), so they work from an SDK whose PATH lacks stsvend
and from any working directory; the source of
stsvend's own identity this run used (a profile) is written as `--source-profile`. The file is
read, changed and replaced under an flock next to it, and replaced only if nobody changed it
meanwhile (else it is read again): concurrent runs never lose each other's profiles. A new file
is 0600; an existing one keeps its mode less write access for group and others.
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
from stsvend.client import plain
from stsvend.client.calls import ApiClient
from stsvend.client.location import api_url, resolve_region, server_id_for
from stsvend.client.reentry import refuse_recursion
from stsvend.errors import EXIT_OTHER, EXIT_USAGE, CommandError
from stsvend.terminal import printable

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
    existing: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, list[str]]:
    """profile name -> its lines (without the header), one per role the answer lists, in order.

    Each line asks for `duration`, else the role's MaxDurationSeconds: the longest credentials let
    a long-lived SDK client run stsvend about once per lifetime (docs/client.md, "Refresh timing").
    `existing` maps the profiles this command wrote before to the API and role ARN each vends
    (`written_roles`): they keep their names, and no other role may take one of them.
    """
    roles = answer.get("Roles") if isinstance(answer, dict) else None
    if not isinstance(roles, list):
        raise CommandError("InvalidAnswer", "GET /roles answered without a Roles list", EXIT_OTHER)
    arns: dict[str, tuple[str, int | None]] = {}
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
        if arn not in arns or valid:
            arns[arn] = (match.group(3), maximum if valid else None)
    names = profile_names({arn: name for arn, (name, _) in arns.items()}, prefix, existing or {}, api)
    profiles: dict[str, list[str]] = {}
    for arn, (_, maximum) in arns.items():
        profile = names[arn]
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


def profile_names(
    roles: Mapping[str, str], prefix: str, existing: Mapping[str, tuple[str, str]], api: str = ""
) -> dict[str, str]:
    """role ARN -> its profile name, unique among them and the profiles written before.

    In order of precedence: the name (with this prefix) a profile written before for this API
    already has for the ARN; the role's own name, if no other granted role has it;
    `<account>-<name>`; `<name>-<digest of the ARN>`. A candidate that another role (or this role
    through another API) holds in the file is passed over, as is a role's own name while that role
    is granted: no profile ever starts to vend another role than the one it was written for.
    """
    taken = dict(existing)
    chosen: dict[str, str] = {}
    for name, (held_api, arn) in existing.items():
        if held_api == api and arn in roles and arn not in chosen and name.startswith(prefix):
            chosen[arn] = name
    counts: dict[str, int] = {}
    for role_name in roles.values():
        counts[role_name] = counts.get(role_name, 0) + 1
    plain_names = {prefix + role_name for role_name in roles.values() if counts[role_name] == 1}
    for arn, role_name in roles.items():
        if arn in chosen:
            continue
        account = arn.split(":")[4]
        digest = plain.sha256_hex(arn.encode())[:8]
        candidates = [f"{prefix}{account}-{role_name}", f"{prefix}{role_name}-{digest}"]
        if counts[role_name] == 1:
            candidates.insert(0, prefix + role_name)
        for candidate in candidates:
            # A role's own plain name is kept free for it, even if it comes later in the list.
            held = taken.get(candidate)
            if (held is None or held == (api, arn)) and not (
                candidate in plain_names and candidate != prefix + role_name
            ):
                chosen[arn] = candidate
                taken[candidate] = (api, arn)
                break
        else:
            raise CommandError(
                "ProfileCollision",
                f"no profile name is free for role {arn} (tried {', '.join(candidates)}): remove "
                "the profiles that hold them or choose another --prefix; nothing was written",
                EXIT_USAGE,
            )
    return {arn: chosen[arn] for arn in roles}


def written_roles(text: str) -> dict[str, tuple[str, str]]:
    """The profiles this command wrote in `text` (the marker on their first line) -> the API URL
    and the role ARN their credential_process asks for."""
    found: dict[str, tuple[str, str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            words = match.group(1).split()
            current = words[1] if len(words) == 2 and words[0] == "profile" else None
            marked = False
            continue
        if current is None:
            continue
        if line.strip() == MARKER:
            marked = True
            continue
        key, sep, value = line.partition("=")
        if marked and sep and key.strip() == "credential_process":
            try:
                words = shlex.split(value)
            except ValueError:
                continue
            arns = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--role"]
            apis = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--api"]
            if len(arns) == 1 and len(apis) == 1 and _ROLE_ARN.fullmatch(arns[0]):
                found[current] = (apis[0], arns[0])
    return found


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


def write_atomically(path: Path, text: str, expected: str | None = None) -> None:
    """Replace `path` with `text` through a temporary file made with O_EXCL (mkstemp) in its
    directory. `expected`: the file's identity (`_identity`) when it was read; if it is no longer
    that, `_Changed` is raised and nothing is written."""
    # A symlinked config file (kept with dotfiles) is written where it points, and stays a link.
    path = Path(os.path.realpath(path))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Nobody else may rewrite the command lines the profiles run.
    mode = path.stat().st_mode & 0o755 if path.exists() else 0o600
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".stsvend-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        if expected is not None and _identity(path) != expected:
            raise _Changed
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class _Changed(Exception):
    """The config file changed between reading it and replacing it."""


def _identity(path: Path) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "absent"
    return f"{info.st_dev}.{info.st_ino}.{info.st_size}.{info.st_mtime_ns}"


def _lock(path: Path) -> int:
    """An flock on the (resolved) config file itself, made 0600 if it is new; held until the
    descriptor is closed. The file is replaced by rename, so the lock is taken again until it is
    held on the file the path names."""
    import fcntl

    real = Path(os.path.realpath(path))
    real.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        fd = os.open(real, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, named = os.fstat(fd), os.stat(real)
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            return fd
        os.close(fd)


# What the profiles run: this Python, isolated (-I: neither the current directory, where a job's
# checkout could hold a `stsvend` package, nor PYTHON* variables decide what is imported), calling
# stsvend's entry point directly. Neither a console script (pip's older ones import `re` first) nor
# `-m` or a zipapp's `__main__` (both load runpy) is that fast on a cache hit (bench/clientcache.py).
_ENTRY = "import sys;from stsvend.cli import main;sys.exit(main())"
_ZIPAPP_ENTRY = (
    "import sys;sys.path.insert(0,{path!r});from stsvend.cli import main;sys.exit(main(client_only=True))"
)


def own_command() -> list[str]:
    """The command that runs this very stsvend from any directory and PATH: this Python by its
    absolute path, with the one-file client it was started from on sys.path if it was."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    started = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    where = str(getattr(main, "__file__", "") or "")
    if spec is not None and spec.name == "__main__" and started and where.startswith(started + os.sep):
        return [sys.executable, "-I", "-c", _ZIPAPP_ENTRY.format(path=started)]
    return [sys.executable, "-I", "-c", _ENTRY]


def command_runs_stsvend(command: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why `command --version` does not answer as this stsvend (run as an SDK would run it: no
    shell, with a PATH that lacks stsvend's directory), or None."""
    import subprocess

    from stsvend.constants import __version__

    try:
        done = subprocess.run([*command, "--version"], capture_output=True, timeout=60, check=False,
                              env={**env, "PATH": env.get("PATH", os.defpath)})
    except (OSError, subprocess.SubprocessError) as exc:
        return f"it cannot be run: {exc}"
    if done.stdout.decode("utf-8", "replace").strip() != f"stsvend {__version__}":
        return f"`{shlex.join(command)} --version` does not answer `stsvend {__version__}`"
    return None


def command_problem(command: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why `command` cannot be run as an SDK would run a credential_process line, or None."""
    import shutil

    first = command[0]
    if os.sep in first:
        found = first if os.path.isfile(first) and os.access(first, os.X_OK) else None
    else:
        found = shutil.which(first, path=env.get("PATH", os.defpath))
    if found is None:
        return (f"{first!r} is not an executable file or on this PATH: the profiles fail unless the "
                "SDKs that read them find it (give --command the absolute path)")
    return None


def cmd_configure(args: Any) -> int:
    env = os.environ
    refuse_recursion(env)
    url = api_url(args.api, env)
    region = resolve_region(args.region, url, env)
    if _PREFIX.fullmatch(args.prefix) is None:
        raise CommandError("InvalidRequest", "--prefix takes up to 32 of [A-Za-z0-9_+=,.@-]", EXIT_USAGE)
    command = own_command() if args.stsvend_command is None else shlex.split(args.stsvend_command)
    if not command:
        raise CommandError("InvalidRequest", "--command must name a command", EXIT_USAGE)
    problem = command_problem(command, env) or command_runs_stsvend(command, env)
    if problem is not None:
        raise CommandError("CommandNotFound", f"--command {problem}; nothing was written", EXIT_USAGE)
    client = ApiClient(url, region, env, server_id=args.server_id, source_profile=args.source_profile)
    answer = client.call("GET", "/roles")
    source = client.source
    source_profile = args.source_profile or (source.profile if source is not None else None)
    options: list[str] = []
    if source_profile:
        options += ["--source-profile", source_profile]
    if args.server_id:
        options += ["--server-id", server_id_for(url, args.server_id, env)]
    path = config_path(args.config_file, env)
    if args.dry_run:
        old = _read(path)
        new = updated_config(old, profiles_for(answer, url, region, args.prefix, command, options,
                                               args.duration, written_roles(old)))
        # Only the changed lines, and no secret among them: the file may hold keys, and a dry
        # run's output may go to a CI log.
        sys.stdout.writelines(_redacted(line) for line in difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), str(path), str(path), n=0
        ))
        return 0
    try:
        lock = _lock(path)
    except OSError as exc:
        raise CommandError("ConfigUnwritable", f"{path}: {exc.strerror or exc}", EXIT_OTHER) from None
    try:
        for _attempt in range(5):
            expected = _identity(Path(os.path.realpath(path)))
            old = _read(path)
            profiles = profiles_for(answer, url, region, args.prefix, command, options,
                                    args.duration, written_roles(old))
            new = updated_config(old, profiles)
            if new == old:
                break
            try:
                write_atomically(path, new, expected)
                break
            except _Changed:
                continue  # someone else (another tool) wrote it meanwhile: read it again
            except OSError as exc:
                raise CommandError("ConfigUnwritable", f"{path}: {exc.strerror or exc}",
                                   EXIT_OTHER) from None
        else:
            raise CommandError("ConfigBusy", f"{path} kept changing while it was being written; "
                               "nothing was written: run configure again", EXIT_OTHER)
    finally:
        os.close(lock)
    state = "wrote" if new != old else "unchanged:"
    # The path and the command come from the environment and the options: shown escaped.
    print(f"{state} {len(profiles)} profile(s) in {printable(path)}: {', '.join(profiles)}")
    print(f"  they run: {printable(shlex.join(command))}")
    if source_profile:
        print(f"  stsvend signs as profile {source_profile!r} (--source-profile)")
    elif source is not None:
        print(f"  stsvend signs with {source.describe()}: the profiles need the same where they run")
    print("  select one with AWS_PROFILE=NAME (the JavaScript SDK v2 also needs AWS_SDK_LOAD_CONFIG=1"
          " to read ~/.aws/config); if one fails: stsvend doctor --profile NAME")
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeError) as exc:
        raise CommandError("ConfigUnreadable", f"{path}: {exc}", EXIT_OTHER) from None
