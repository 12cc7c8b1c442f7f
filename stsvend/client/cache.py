"""The credential cache of `stsvend credentials` and `stsvend exec`.

One file per key under `$XDG_CACHE_HOME/stsvend/` (default `~/.cache/stsvend/`): the directory is
0700, each file 0600, written to a temporary file in the same directory and renamed into place, so
a reader sees the old answer or the new one, never half of one. An entry is reused until
`refresh_window` seconds before its Expiration; by default (`None`) that window follows the SDKs
(`default_refresh_window`). A file that cannot be read or parsed, is not ours, is readable by
others, names another key, or holds an answer that fails `answer_problem` is a miss; so is every
entry of a directory that is not ours or that others may write.

The key hashes the API URL, the server id, the caller, and the request (role, duration, tags,
session name). The caller part must be known without botocore (`caller_identity`): the ambient
access key id (`AWS_ACCESS_KEY_ID`) when set, else the profile the credentials come from (or the
profile-less chain's variables) together with the identity of the AWS config and credentials files
(path, inode, size, modification time), so keys pasted anew into those files after a restart of the
server they belong to never meet the old entry. Credentials that change behind unchanged files (a
different instance role, a re-run `aws sso login` as someone else) keep reading the old entry until
it is due for refresh: `--no-cache` bypasses the cache, `stsvend cache clear` forgets it.

Concurrent misses for one key (a build starting many SDK processes at once) take an flock on the
key's lock file: one process calls the API, the others wait (bounded) and then read its answer.
This module imports only the standard library, so a cache hit never loads botocore.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from stsvend.client import plain

# typing.TYPE_CHECKING without importing typing, which every cache hit would pay for. A hit
# imports no more than it needs: `json`, `datetime` and `contextlib` only on a miss or for text
# outside stsvend's own forms (stsvend.client.plain); paths are plain strings (no `pathlib`).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping
    from contextlib import AbstractContextManager
    from datetime import datetime
    from os import PathLike
    from typing import Any

_KEY_VERSION = "stsvend-cache-2"
LOCK_WAIT_SECONDS = 60.0
_LOCK_POLL_SECONDS = 0.05
REQUIRED_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
# The SDKs ask their credential_process again this long before expiry: botocore's advisory window
# (botocore/credentials.py: _DEFAULT_ADVISORY_REFRESH_TIMEOUT, 15 minutes; mandatory 10) and the
# JavaScript SDK v3's (@smithy/core: EXPIRATION_MS, 5 minutes). Vending anew a minute before the
# widest of them hands every SDK credentials it keeps for most of their life.
SDK_REFRESH_WINDOW = 15 * 60 + 60
# The longest credentials the API can vend are 12 hours (AssumeRole's maximum); anything later is
# not an answer to trust, nor to cache until then.
MAX_LIFETIME_SECONDS = 12 * 3600
SECRET_LIMIT = 1024
TOKEN_LIMIT = 16384

Answer = dict[str, "Any"]


class CacheUnavailable(Exception):
    """The cache directory cannot be used; callers go on without the cache."""


def default_directory(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "stsvend")


# What the profile-less chain reads besides the access key: web identity and container credentials.
_CHAIN_VARIABLES = (
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def caller_identity(env: Mapping[str, str], source_profile: str | None = None) -> str:
    """Who the ambient credentials belong to, as far as can be told without loading them."""
    access_key_id = env.get("AWS_ACCESS_KEY_ID")
    if access_key_id and not source_profile:
        return f"key:{access_key_id}"
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    chain = ":".join(env.get(name, "") for name in _CHAIN_VARIABLES)
    files = ":".join(_file_identity(path) for path in _aws_files(env))
    return f"profile:{source_profile or ''}:{profile}:{chain}:{files}"


def _aws_files(env: Mapping[str, str]) -> tuple[str, str]:
    home = os.path.expanduser("~")
    return (
        env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"),
        env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
    )


def _file_identity(path: str) -> str:
    try:
        info = os.stat(os.path.expanduser(path))
    except OSError:
        return f"{path}=absent"
    return f"{path}={info.st_dev}.{info.st_ino}.{info.st_size}.{info.st_mtime_ns}"


def cache_key(api_url: str, caller: str, request: Mapping[str, Any], server_id: str = "") -> str:
    material = plain.dumps([_KEY_VERSION, api_url, server_id, caller, request], canonical=True)
    return plain.sha256_hex(material.encode())


def parse_expiration(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None if it is not one."""
    from datetime import datetime, timezone

    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def expiration_seconds(value: Any) -> float | None:
    """`parse_expiration(value)` as seconds since the epoch; None if it is not a timestamp. The
    answers' own form (`2027-06-30T00:00:00Z`) is read without importing `datetime`."""
    if isinstance(value, str):
        seconds = plain.utc_seconds(value)
        if seconds is not None:
            return seconds
    parsed = parse_expiration(value)
    return None if parsed is None else parsed.timestamp()


def rfc3339(value: str) -> str:
    """A checked answer's Expiration as stsvend writes a time (TIMESTAMP_FORMAT); the answers' own
    form is passed on without importing `datetime`."""
    if plain.utc_seconds(value) is not None:
        return value
    from stsvend.constants import TIMESTAMP_FORMAT

    parsed = parse_expiration(value)
    assert parsed is not None  # answers are checked before they are cached, served or rendered
    return parsed.strftime(TIMESTAMP_FORMAT)


def is_credential_answer(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and all(isinstance(answer.get(name), str) and answer[name] for name in REQUIRED_FIELDS)
        and expiration_seconds(answer["Expiration"]) is not None
    )


def answer_problem(answer: Any, now: float) -> str | None:
    """Why `answer` is not credentials to cache or print, or None. The text never quotes a value.

    AccessKeyId as IAM documents it (`[A-Z0-9]{16,128}`; STS's are upper case); the secret and the
    token printable ASCII without spaces, bounded; Expiration in the future and within 12 hours.
    """
    if not is_credential_answer(answer):
        return (
            "the service's answer lacks AccessKeyId, SecretAccessKey, SessionToken or a valid "
            "Expiration"
        )
    key_id = answer["AccessKeyId"]
    if not (16 <= len(key_id) <= 128 and key_id.isascii() and key_id.isalnum() and key_id.upper() == key_id):
        return "the service's AccessKeyId is not 16-128 upper-case letters and digits"
    for name, limit in (("SecretAccessKey", SECRET_LIMIT), ("SessionToken", TOKEN_LIMIT)):
        if not is_token_text(answer[name], limit):
            return f"the service's {name} is not printable ASCII without spaces (at most {limit} characters)"
    expiration = expiration_seconds(answer["Expiration"])
    assert expiration is not None
    remaining = expiration - now
    if remaining <= 0:
        return f"the service's credentials have already expired ({answer['Expiration']!r})"
    if remaining > MAX_LIFETIME_SECONDS:
        return f"the service's Expiration {answer['Expiration']!r} is more than 12 hours away"
    return None


def is_token_text(value: str, limit: int) -> bool:
    """Printable ASCII without spaces: what a secret key or a session token is made of."""
    return 0 < len(value) <= limit and value.isascii() and value.isprintable() and " " not in value


def default_refresh_window(lifetime: float) -> float:
    """The SDKs' window (SDK_REFRESH_WINDOW), but at most a third of the credentials' lifetime:
    900 s credentials are inside botocore's 15-minute window from birth, so botocore runs the
    process on every call, and those calls must be served from the cache, not vend each time."""
    return min(SDK_REFRESH_WINDOW, lifetime / 3)


class CredentialCache:
    def __init__(
        self,
        directory: str | PathLike[str],
        clock: Callable[[], float] = time.time,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.directory = os.fspath(directory)
        self._clock = clock
        self._lock_wait = lock_wait_seconds

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    def read(
        self, key: str, refresh_window: float | None, written_since: float | None = None
    ) -> Answer | None:
        """The cached answer if it is still good for the refresh window, else None.

        `refresh_window` None is `default_refresh_window` of the entry's lifetime. An entry written
        at or after `written_since` (by a concurrent process while this one waited for the lock)
        is good as long as it has not expired: it is as fresh as a new call would be.
        """
        found = self._load(key)
        if found is None:
            return None
        answer, fetched, mtime = found
        expiration = expiration_seconds(answer["Expiration"])
        assert expiration is not None
        now = self._clock()
        remaining = expiration - now
        if refresh_window is None:
            refresh_window = default_refresh_window(expiration - fetched)
        if remaining > refresh_window:
            return answer
        if written_since is not None and mtime >= written_since and remaining > 0:
            return answer
        return None

    def read_unexpired(self, key: str) -> Answer | None:
        """The cached answer while it has not expired, whatever the window: for outages."""
        found = self._load(key)
        return None if found is None else found[0]

    def _load(self, key: str) -> tuple[Answer, float, float] | None:
        """(answer, when it was fetched, file mtime) of a sound, unexpired entry bound to `key`."""
        if not self.is_private():
            return None
        found = read_private(self.path(key), 1 << 20)
        if found is None:
            return None
        entry, info = found
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None  # another key's entry, renamed or copied here
        answer, fetched = entry.get("answer"), entry.get("fetched")
        if not isinstance(fetched, (int, float)) or answer_problem(answer, self._clock()) is not None:
            return None
        assert isinstance(answer, dict)
        return answer, float(fetched), info.st_mtime

    def is_private(self) -> bool:
        """Ours, a real directory, and writable by nobody else: otherwise another user could have
        put any entry there."""
        try:
            info = os.lstat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022

    def write(self, key: str, answer: Answer) -> None:
        """Atomically replace the entry: a temporary 0600 file in the directory, then rename."""
        record = {"key": key, "fetched": self._clock(), "answer": answer}
        write_private_json(self.directory, self.path(key), record)

    def get_or_fetch(
        self,
        key: str,
        refresh_window: float | None,
        fetch: Callable[[], Answer],
        warn: Callable[[str], None] = lambda message: None,
        fallback: Callable[[Exception], Answer | None] = lambda error: None,
    ) -> Answer:
        """The cached answer, or `fetch()`'s, with at most one process fetching a key at a time.

        A cache that cannot be used is reported through `warn`, and the answer fetched anyway. When
        `fetch()` fails, `fallback(error)` may give an answer instead (not written to the cache).
        """
        started = time.time()  # compared with file mtimes, which follow the real clock
        answer = self.read(key, refresh_window)
        if answer is not None:
            return answer
        try:
            self.ensure_directory()
            with self._locked(key):
                answer = self.read(key, refresh_window, written_since=started)
                if answer is not None:
                    return answer
                try:
                    answer = fetch()
                except Exception as error:
                    substitute = fallback(error)
                    if substitute is None:
                        raise
                    return substitute
                try:
                    self.write(key, answer)
                except OSError as exc:
                    warn(f"cannot write the credential cache: {exc.strerror or exc}")
                return answer
        except CacheUnavailable as exc:
            warn(f"credential cache not used: {exc}")
            return fetch()

    def ensure_directory(self) -> None:
        try:
            # Missing parents too are 0700 (XDG's rule for the base directory), not mkdir -p's
            # 0777 less the umask: under umask 000 that would be a ~/.cache every user can write.
            missing = [p for p in _self_and_parents(self.directory) if not os.path.lexists(p)]
            for path in reversed(missing):
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    continue  # made meanwhile by a concurrent process
            info = os.lstat(self.directory)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                raise CacheUnavailable(f"{self.directory} is not a directory of this user")
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(self.directory, 0o700)
                if info.st_mode & 0o022:
                    # Others could write here until now: any entry may be theirs.
                    self.clear()
        except OSError as exc:
            raise CacheUnavailable(f"{self.directory}: {exc.strerror or exc}") from exc

    def clear(self) -> int:
        """Remove every entry, and the outages and failure remembered (not the lock files, which
        concurrent processes may hold); returns how many entries were removed. Raises
        CacheUnavailable for a directory that is not this user's."""
        try:
            # Not through a symlink (another user's, where the cache's parent is shared), and by
            # names relative to the directory opened, so it cannot be swapped underneath.
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise CacheUnavailable(
                f"{self.directory}: not a directory of this user ({exc.strerror})"
            ) from exc
        removed = 0
        try:
            if os.fstat(fd).st_uid != os.getuid():
                raise CacheUnavailable(f"{self.directory} is not a directory of this user")
            for name in os.listdir(fd):
                # .state: what stsvend.client.status remembers (an outage, the last failure).
                if name.endswith((".json", ".tmp", ".state")):
                    try:
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    removed += name.endswith(".json")
        finally:
            os.close(fd)
        return removed

    def _locked(self, key: str) -> AbstractContextManager[bool]:
        """Hold the key's flock, waiting at most the bounded time; gives whether it was taken.

        Past the bound the caller goes on unlocked (it may then call the API too) rather than fail.
        The lock file is never removed: removing it would let two processes lock different files.
        """
        from contextlib import contextmanager  # only on a miss

        return contextmanager(self._hold)(key)

    def _hold(self, key: str) -> Generator[bool, None, None]:
        lock_path = os.path.join(self.directory, f"{key}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise CacheUnavailable(f"{lock_path}: {exc.strerror or exc}") from exc
        try:
            deadline = time.monotonic() + self._lock_wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_LOCK_POLL_SECONDS)
                else:
                    yield True
                    return
        finally:
            os.close(fd)


def read_private(path: str, limit: int) -> tuple[Any, os.stat_result] | None:
    """The JSON value in `path` and the file's status, if it is a regular file of this user that
    nobody else may read or write (opened without following a symlink); else None, as for text
    that is not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return plain.loads(handle.read(limit)), info
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def _self_and_parents(path: str) -> Iterator[str]:
    """`path`, then each directory above it, as `Path(path)` and its `.parents` name them: by
    text, keeping `..` (which only the file system can resolve, through any symlink before it)."""
    path = path.rstrip("/") or path
    yield path
    while True:
        parent = os.path.dirname(path).rstrip("/") or os.path.dirname(path)
        if parent == path or not parent:
            return
        path = parent
        yield path


def write_private_json(directory: str, path: str, record: Any) -> None:
    """Atomically replace `path` with `record` as JSON: a temporary 0600 file in `directory` (a real
    directory, checked by the caller), then rename; the temporary file never outlives a failure."""
    # Only on a miss or a failure: a cache hit does not pay for their imports.
    import json
    import tempfile

    # The directory as the file system resolves it: mkstemp makes `dir` absolute by text, which
    # would take a `..` after a symlink somewhere else.
    fd, temporary = tempfile.mkstemp(dir=os.path.realpath(directory), prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
