from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from chalicelib import audit, contract
from chalicelib.config import Settings
from chalicelib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

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


def test_the_powertools_service_and_namespace_have_one_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # chalicelib/contract.py names them; no stage may set another name that some reader would take.
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    scopes = [config, *config["stages"].values()]
    for scope in scopes:
        variables = scope.get("environment_variables", {})
        assert "POWERTOOLS_SERVICE_NAME" not in variables
        assert "POWERTOOLS_METRICS_NAMESPACE" not in variables
    # And the code does not depend on the environment for them.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "other")
    assert Logger(service=contract.SERVICE).service == contract.SERVICE == "stsvend"
    assert audit.logger.service == contract.SERVICE
    assert contract.NAMESPACE == "stsvend"


def test_server_ids_are_a_comma_separated_list_of_base_urls() -> None:
    env = {**BASE, "STSVEND_IDENTITY_MODE": "sts-proof"}
    settings = Settings.from_env(
        {**env, "STSVEND_SERVER_ID": "http://127.0.0.1:8000, http://localhost:8000,https://api.example/v1/"}
    )
    assert settings.server_ids == ("http://127.0.0.1:8000", "http://localhost:8000", "https://api.example/v1")


@pytest.mark.parametrize(
    "value",
    ["stsvend-local", "ftp://host", "https://Host.example", "https://h.example:443", "https://h.example/?q=1"],
    ids=["not-a-url", "scheme", "upper-case-host", "default-port", "query"],
)
def test_server_ids_must_be_written_as_clients_derive_them(value: str) -> None:
    env = {**BASE, "STSVEND_IDENTITY_MODE": "sts-proof", "STSVEND_SERVER_ID": f"http://127.0.0.1:8000,{value}"}
    with pytest.raises(ConfigError, match="STSVEND_SERVER_ID"):
        Settings.from_env(env)
