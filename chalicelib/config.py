"""Settings, read once from the environment into a frozen, typed object."""

from __future__ import annotations

import os
import re
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
    # The identity-provider mode (chalicelib.idp): unset, no role may be granted in web-identity mode.
    issuer_url: str | None = None
    issuer_keys: tuple[str, ...] = ()
    token_audience: str = "stsvend"

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

        issuer, keys, audience = _issuer(env)
        return cls(
            grants_table=required("STSVEND_GRANTS_TABLE"),
            identity_mode=mode,
            server_ids=server_ids,
            grant_cache_seconds=ttl,
            region=region,
            issuer_url=issuer,
            issuer_keys=keys,
            token_audience=audience,
        )


AUDIENCE = re.compile(r"[A-Za-z0-9._:/-]{1,255}")


def _issuer(env: Mapping[str, str]) -> tuple[str | None, tuple[str, ...], str]:
    """`STSVEND_ISSUER_URL`, `STSVEND_ISSUER_KEYS` and `STSVEND_TOKEN_AUDIENCE`: both of the first
    two or neither."""
    from chalicelib.idp import DEFAULT_AUDIENCE, issuer_keys, issuer_url

    raw_url = env.get("STSVEND_ISSUER_URL", "").strip()
    raw_keys = env.get("STSVEND_ISSUER_KEYS", "").strip()
    audience = env.get("STSVEND_TOKEN_AUDIENCE", "").strip() or DEFAULT_AUDIENCE
    if not AUDIENCE.fullmatch(audience):
        raise ConfigError("STSVEND_TOKEN_AUDIENCE must be 1-255 characters of letters, digits and ._:/-")
    if not raw_url and not raw_keys:
        return None, (), audience
    if not raw_url or not raw_keys:
        raise ConfigError("STSVEND_ISSUER_URL and STSVEND_ISSUER_KEYS are set together or not at all")
    return issuer_url(raw_url), issuer_keys(raw_keys), audience


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
