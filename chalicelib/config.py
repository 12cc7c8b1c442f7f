"""Settings, read once from the environment into a frozen, typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigError

IDENTITY_MODES = ("apigateway", "sts-proof")
DEFAULT_GRANT_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    grants_table: str
    identity_mode: str
    server_id: str | None
    grant_cache_seconds: float
    region: str

    @property
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
        server_id = env.get("STSVEND_SERVER_ID", "").strip() or None
        if mode == "sts-proof" and server_id is None:
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
            server_id=server_id,
            grant_cache_seconds=ttl,
            region=region,
        )
