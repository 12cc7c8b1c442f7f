"""The credential cache of `stsvend credentials` and `stsvend exec`.

One file per key under `$XDG_CACHE_HOME/stsvend/` (default `~/.cache/stsvend/`): the directory is
0700, each file 0600, written to a temporary file in the same directory and renamed into place, so
a reader sees the old answer or the new one, never half of one. An entry is reused until
`refresh_window` seconds before its Expiration. A file that cannot be read or parsed, is not ours,
or is readable by others is a miss.

The key hashes the API URL, the caller, and the request (role, duration, tags, session name). The
caller part must be known without botocore, so it is the ambient access key id (`AWS_ACCESS_KEY_ID`)
when set, else the profile name (`AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, else `default`) together with
`AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`. So credentials that change behind an unchanged
profile name (a different instance role, a re-run `aws sso login` as someone else) keep reading the
old entry until it is due for refresh: `--no-cache` bypasses the cache, and deleting the directory
forgets it.

Concurrent misses for one key (a build starting many SDK processes at once) take an flock on the
key's lock file: one process calls the API, the others wait (bounded) and then read its answer.
This module imports only the standard library, so a cache hit never loads botocore.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

# typing.TYPE_CHECKING without importing typing, which would cost every cache hit ~2 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_KEY_VERSION = "stsvend-cache-1"
LOCK_WAIT_SECONDS = 60.0
_LOCK_POLL_SECONDS = 0.05
REQUIRED_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")

Answer = dict[str, "Any"]


class CacheUnavailable(Exception):
    """The cache directory cannot be used; callers go on without the cache."""


def default_directory(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stsvend"


def caller_identity(env: Mapping[str, str]) -> str:
    """Who the ambient credentials belong to, as far as can be told without loading them."""
    access_key_id = env.get("AWS_ACCESS_KEY_ID")
    if access_key_id:
        return f"key:{access_key_id}"
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    files = (env.get("AWS_CONFIG_FILE", ""), env.get("AWS_SHARED_CREDENTIALS_FILE", ""))
    return f"profile:{profile}:{files[0]}:{files[1]}"


def cache_key(api_url: str, caller: str, request: Mapping[str, Any]) -> str:
    material = json.dumps(
        [_KEY_VERSION, api_url, caller, request], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(material.encode()).hexdigest()


def parse_expiration(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None if it is not one."""
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


def is_credential_answer(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and all(isinstance(answer.get(name), str) and answer[name] for name in REQUIRED_FIELDS)
        and parse_expiration(answer["Expiration"]) is not None
    )


class CredentialCache:
    def __init__(
        self,
        directory: Path,
        clock: Callable[[], float] = time.time,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.directory = directory
        self._clock = clock
        self._lock_wait = lock_wait_seconds

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read(
        self, key: str, refresh_window: float, written_since: float | None = None
    ) -> Answer | None:
        """The cached answer if it is still good for `refresh_window` seconds, else None.

        An entry written at or after `written_since` (by a concurrent process while this one waited
        for the lock) is good as long as it has not expired: it is as fresh as a new call would be.
        """
        try:
            fd = os.open(self.path(key), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or info.st_mode & 0o077
            ):
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                entry = json.loads(handle.read(1 << 20))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        answer = entry.get("answer") if isinstance(entry, dict) else None
        if not is_credential_answer(answer):
            return None
        assert isinstance(answer, dict)
        expiration = parse_expiration(answer["Expiration"])
        assert expiration is not None
        remaining = expiration.timestamp() - self._clock()
        if remaining > refresh_window:
            return answer
        if written_since is not None and info.st_mtime >= written_since and remaining > 0:
            return answer
        return None

    def write(self, key: str, answer: Answer) -> None:
        """Atomically replace the entry: a temporary 0600 file in the directory, then rename."""
        import tempfile  # only on a miss: a cache hit does not pay for its imports

        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"answer": answer}, handle)
            os.replace(temporary, self.path(key))
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise

    def get_or_fetch(
        self,
        key: str,
        refresh_window: float,
        fetch: Callable[[], Answer],
        warn: Callable[[str], None] = lambda message: None,
    ) -> Answer:
        """The cached answer, or `fetch()`'s, with at most one process fetching a key at a time.

        A cache that cannot be used is reported through `warn`, and the answer fetched anyway.
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
                answer = fetch()
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
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                raise CacheUnavailable(f"{self.directory} is not a directory of this user")
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise CacheUnavailable(f"{self.directory}: {exc.strerror or exc}") from exc

    @contextmanager
    def _locked(self, key: str) -> Iterator[bool]:
        """Hold the key's flock, waiting at most the bounded time; yields whether it was taken.

        Past the bound the caller goes on unlocked (it may then call the API too) rather than fail.
        The lock file is never removed: removing it would let two processes lock different files.
        """
        lock_path = self.directory / f"{key}.lock"
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
