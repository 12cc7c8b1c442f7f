"""A credential answer as the service gives it, for the client's unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

NOW = datetime(2026, 11, 28, 19, 0, 0, tzinfo=timezone.utc)


def answer(expires_in: float = 3600, **extra: Any) -> dict[str, Any]:
    expiration = (NOW + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Version": 1,
        "AccessKeyId": "ASIAUNITTESTKEY00001",
        "SecretAccessKey": "unit-secret",
        "SessionToken": "unit-token",
        "Expiration": expiration,
        "AssumedRoleArn": "arn:aws:sts::222222222222:assumed-role/deployer/s",
        **extra,
    }
