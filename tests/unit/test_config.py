from __future__ import annotations

import pytest

from chalicelib.config import Settings
from chalicelib.errors import ConfigError

BASE = {
    "STSVEND_GRANTS_TABLE": "grants",
    "STSVEND_IDENTITY_MODE": "apigateway",
    "AWS_REGION": "eu-west-1",
}


def test_settings_from_environment() -> None:
    settings = Settings.from_env({**BASE, "STSVEND_GRANT_CACHE_SECONDS": "0"})
    assert settings.grants_table == "grants"
    assert settings.identity_mode == "apigateway"
    assert settings.grant_cache_seconds == 0
    assert settings.region == "eu-west-1"
    assert settings.partition == "aws"
    assert Settings.from_env(BASE).grant_cache_seconds == 10


def test_region_decides_the_partition() -> None:
    assert Settings.from_env({**BASE, "AWS_REGION": "cn-north-1"}).partition == "aws-cn"
    assert Settings.from_env({**BASE, "AWS_REGION": "us-gov-west-1"}).partition == "aws-us-gov"
    env = {k: v for k, v in BASE.items() if k != "AWS_REGION"}
    assert Settings.from_env({**env, "AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"STSVEND_GRANTS_TABLE": ""}, "STSVEND_GRANTS_TABLE"),
        ({"STSVEND_IDENTITY_MODE": "none"}, "STSVEND_IDENTITY_MODE"),
        ({"STSVEND_IDENTITY_MODE": "sts-proof"}, "STSVEND_SERVER_ID"),
        ({"STSVEND_GRANT_CACHE_SECONDS": "ten"}, "STSVEND_GRANT_CACHE_SECONDS"),
        ({"STSVEND_GRANT_CACHE_SECONDS": "-1"}, "STSVEND_GRANT_CACHE_SECONDS"),
        ({"AWS_REGION": ""}, "AWS_REGION"),
    ],
)
def test_bad_settings_fail_with_the_variable_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**BASE, **change})
