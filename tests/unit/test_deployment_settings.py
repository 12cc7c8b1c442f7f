"""stsvend.ops.deployment: Chalice's names for a stage in one place, and the stage settings of
deploy/stages.json checked before they reach API Gateway, a template or a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stsvend.checkout.checkout import Checkout
from stsvend.cli import main
from stsvend.errors import CommandError
from stsvend.ops import deployment

ROOT = Path(__file__).resolve().parents[2]
ACL = "arn:aws:wafv2:eu-west-1:999999999999:regional/webacl/stsvend/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_chalices_names() -> None:
    assert deployment.chalice_names("stsvend", "prod") == ("stsvend-prod", "stsvend-prod-api_handler")
    d = deployment.deployment(Checkout.open(ROOT), "dev")
    assert (d.service_role_name, d.log_group, d.chalice_log_group) == (
        "stsvend-dev-api_handler",
        "/aws/lambda/stsvend-dev",
        "/aws/lambda/stsvend-dev-api_handler",
    )
    assert d.log_retention_days == 30 and d.xray is True and d.grants_table == "stsvend-grants-dev"


def settings_root(tmp_path: Path, entry: dict[str, Any]) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "stages.json").write_text(json.dumps({"stages": {"prod": entry}}))
    return tmp_path


GOOD = {"throttling_rate_limit": 100, "throttling_burst_limit": 200, "waf_web_acl_arn": None}


@pytest.mark.parametrize(
    "change",
    [
        {"throttling_rate_limit": 0},
        {"throttling_rate_limit": -1},
        {"throttling_rate_limit": "100"},
        {"throttling_rate_limit": True},
        {"throttling_rate_limit": 10001},
        {"throttling_burst_limit": 1.5},
        {"throttling_burst_limit": 0},
        {"throttling_burst_limit": 5001},
        {"waf_web_acl_arn": "*"},
        {"waf_web_acl_arn": ACL.replace("regional", "global")},
        {"waf_web_acl_arn": ACL + "\n"},
        {"waf_web_acl_arn": 5},
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as raised:
        deployment.stage_settings(settings_root(tmp_path, {**GOOD, **change}), "prod")
    assert raised.value.code == "InvalidSettings" and "\n" not in raised.value.message


def test_good_settings_and_a_web_acl(tmp_path: Path) -> None:
    settings = deployment.stage_settings(settings_root(tmp_path, {**GOOD, "waf_web_acl_arn": ACL}), "prod")
    assert settings == deployment.StageSettings(100.0, 200, ACL)


def test_a_missing_stage_or_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        deployment.stage_settings(tmp_path, "prod")
    with pytest.raises(CommandError):
        deployment.stage_settings(settings_root(tmp_path, GOOD), "dev")


def test_deploy_info_prints_the_service_role_and_the_stages_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy-info", "--stage", "dev", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "service role:       stsvend-dev-api_handler" in out and "/aws/lambda/stsvend-dev " in out
    assert main(["deploy-info", "--stage", "dev", "--root", str(ROOT), "--format", "parameters"]) == 0
    assert capsys.readouterr().out.split() == [
        "ThrottlingRateLimit=20",
        "ThrottlingBurstLimit=40",
        "AccessLogRetentionInDays=30",
    ]
    assert main(["deploy-info", "--stage", "nope", "--root", str(ROOT)]) == 1
    assert main(["deploy-info", "--stage", "Bad Stage", "--root", str(ROOT)]) == 2


def test_a_deployed_state_that_is_not_chalices_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prod.json"
    for text in ("{", "[]", '{"resources": [{"no": "name"}]}'):
        bad.write_text(text)
        with pytest.raises(CommandError):
            deployment.read_state(bad)
    assert deployment.read_state(tmp_path / "absent.json") == {}


def test_deploy_refuses_the_local_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--stage", "local", "--root", str(ROOT)]) == 2
    assert "never deployed" in capsys.readouterr().err


def test_a_checkout_with_autogen_policy_on_is_refused() -> None:
    """Chalice names the role <app>-<stage> then: the name stsvend derives would be wrong."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["autogen_policy"] = True
    checkout = Checkout(ROOT, config)
    with pytest.raises(CommandError) as raised:
        deployment.deployment(checkout, "prod")
    assert raised.value.code == "UnexpectedConfig"
