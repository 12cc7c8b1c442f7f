"""The monitoring part of `.chalice/package-overrides.json` is what stsvend.ops.definitions says, and
rewriting it leaves the rest of the file alone (tests/functional/test_packaging.py checks the
packaged template and runs cfn-lint)."""

from __future__ import annotations

import json
from pathlib import Path

from stsvend.ops.template import OVERRIDES, dumps, merged, sections

ROOT = Path(__file__).resolve().parents[2]


def test_the_merge_template_is_up_to_date_with_the_definitions() -> None:
    current = json.loads((ROOT / OVERRIDES).read_text(encoding="utf-8"))
    assert merged(current, sections(ROOT)) == current, "run: python -m stsvend.ops.template"


def test_rewriting_keeps_other_entries_and_drops_monitoring_no_longer_defined() -> None:
    current = {
        "Resources": {
            "ApiHandlerLogGroup": {"Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${APIHandler}"}}},
            "StsvendAlarmRetired": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
        },
        "Outputs": {"ServiceRoleArn": {"Value": {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}}},
    }
    wanted = sections(ROOT)
    result = merged(current, wanted)
    assert result["Outputs"] == current["Outputs"]
    assert result["Resources"]["ApiHandlerLogGroup"] == current["Resources"]["ApiHandlerLogGroup"]
    assert "StsvendAlarmRetired" not in result["Resources"]
    assert set(wanted["Resources"]) <= set(result["Resources"])
    assert json.loads(dumps(result)) == result
    # Short objects stay on one line, as the file is written by hand.
    assert '"LogGroupName": {"Fn::Sub": "/aws/lambda/${APIHandler}"}' in dumps(result)
