"""Settings, read once from the environment into a frozen, typed object."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigError
from chalicelib.identity import normalize_server_id

IDENTITY_MODES = ("apigateway", "sts-proof")
DEFAULT_GRANT_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    grants_table: str
    identity_mode: str
    # The base URLs this server answers as in sts-proof mode (a proof must name one of them).
    server_ids: tuple[str, ...]
    grant_cache_seconds: float
    region: str

    # Read on every vend; a region's partition never changes.
    @functools.cached_property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is not set; stsvend cannot start without it")
            return value

        mode = required("STSVEND_IDENTITY_MODE")
        if mode not in IDENTITY_MODES:
            raise ConfigError(f"STSVEND_IDENTITY_MODE={mode!r} is not one of {', '.join(IDENTITY_MODES)}")
        server_ids = _server_ids(env.get("STSVEND_SERVER_ID", ""))
        if mode == "sts-proof" and not server_ids:
            raise ConfigError("STSVEND_SERVER_ID is required when STSVEND_IDENTITY_MODE=sts-proof")

        raw_ttl = env.get("STSVEND_GRANT_CACHE_SECONDS", "").strip()
        try:
            ttl = float(raw_ttl) if raw_ttl else DEFAULT_GRANT_CACHE_SECONDS
        except ValueError:
            raise ConfigError(f"STSVEND_GRANT_CACHE_SECONDS={raw_ttl!r} is not a number") from None
        if ttl < 0 or ttl != ttl:
            raise ConfigError("STSVEND_GRANT_CACHE_SECONDS must be 0 or more")

        region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
        if not region:
            raise ConfigError("AWS_REGION (or AWS_DEFAULT_REGION) is not set")

        return cls(
            grants_table=required("STSVEND_GRANTS_TABLE"),
            identity_mode=mode,
            server_ids=server_ids,
            grant_cache_seconds=ttl,
            region=region,
        )


def _server_ids(raw: str) -> tuple[str, ...]:
    """`STSVEND_SERVER_ID`: comma-separated base URLs, each in the form clients derive from theirs."""
    ids = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        normalized = normalize_server_id(entry)
        if normalized is None:
            raise ConfigError(
                f"STSVEND_SERVER_ID entry {entry!r} is not a base URL http(s)://host[:port][/prefix]"
            )
        if normalized != entry.rstrip("/"):
            raise ConfigError(
                f"STSVEND_SERVER_ID entry {entry!r} must be written as clients derive it: {normalized!r}"
            )
        ids.append(normalized)
    return tuple(ids)
