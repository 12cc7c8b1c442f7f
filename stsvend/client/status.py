"""What `stsvend credentials` remembers between runs besides credentials, in the cache directory
(0700; each file 0600, written to a temporary file and renamed into place):

- `outage-<digest>.state`: the API at one URL failed as unavailable or unreachable (exit 4) at
  `since`. For `OUTAGE_MEMORY_SECONDS` after that, a run whose cached credentials are still valid
  serves them at once instead of waiting for the API again; a run with nothing valid cached still
  asks. Any answer from the API (credentials, a denial, a bad request) forgets the outage: a
  denial is never remembered as one.
- `last-failure.state`: the last failure of a `credentials` run (time, API, role, profile, code,
  message, request id), for `stsvend doctor`. Messages never hold a secret (stsvend.errors).

Only read on a cache miss or by `doctor`: a cache hit never opens them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from stsvend.client import plain
from stsvend.client.cache import CacheUnavailable, CredentialCache, read_private, write_private_json

OUTAGE_MEMORY_SECONDS = 60.0
LAST_FAILURE = "last-failure.state"


def outage_path(directory: str, api: str) -> str:
    return os.path.join(directory, f"outage-{plain.sha256_hex(api.encode())[:32]}.state")


def recent_outage(directory: str, api: str, now: float | None = None) -> dict[str, Any] | None:
    """The outage recorded for `api` if it began less than OUTAGE_MEMORY_SECONDS ago."""
    record = _read(outage_path(directory, api), directory)
    now = time.time() if now is None else now
    if record is None or record.get("api") != api:
        return None
    since = record.get("since")
    if not isinstance(since, (int, float)) or not 0 <= now - since < OUTAGE_MEMORY_SECONDS:
        return None
    return record


def record_outage(directory: str, api: str, code: str, message: str) -> None:
    _write(directory, outage_path(directory, api),
           {"api": api, "since": time.time(), "code": code, "message": message})


def forget_outage(directory: str, api: str) -> None:
    try:
        os.unlink(outage_path(directory, api))
    except OSError:
        pass


def record_failure(directory: str, failure: dict[str, Any]) -> None:
    _write(directory, os.path.join(directory, LAST_FAILURE), {"time": time.time(), **failure})


def last_failure(directory: str) -> dict[str, Any] | None:
    return _read(os.path.join(directory, LAST_FAILURE), directory)


def _write(directory: str, path: str, record: dict[str, Any]) -> None:
    """Best effort: a cache directory that cannot be used is not a reason to fail the run."""
    try:
        CredentialCache(directory).ensure_directory()
        write_private_json(directory, path, record)
    except (OSError, CacheUnavailable):
        pass


def _read(path: str, directory: str) -> dict[str, Any] | None:
    """A record of ours: in a private directory, a regular 0600 file of this user, a JSON object."""
    found = read_private(path, 1 << 16) if CredentialCache(directory).is_private() else None
    return found[0] if found is not None and isinstance(found[0], dict) else None
