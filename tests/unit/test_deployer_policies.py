"""The least-privilege policies for deploying (deploy/iam/): IAM grammar, parliament finds nothing
above LOW, no action or service wildcard, every resource names stsvend's own resources except the
actions AWS gives no resource-level permission (a `*` there must say so in its Sid). That
`deployer-chalice.json` covers every call of a real deploy is shown by
tests/functional/test_deploy_rehearsal.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string, enhance_finding

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "deploy" / "iam").glob("*.json"))
SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
# parliament expects a 12-digit account; the SAM transform's ARN has `aws` there, as the
# CloudFormation documentation writes it (arn:aws:cloudformation:REGION:aws:transform/...).
JUSTIFIED = {("deployer-cloudformation.json", "INVALID_ARN")}


def statements(path: Path) -> list[dict[str, Any]]:
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17"
    return list(policy["Statement"])


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_there_are_policies() -> None:
    assert {p.name for p in POLICIES} >= {"deployer-chalice.json", "deployer-cloudformation.json",
                                          "cloudformation-execution.json", "rollback-cloudformation.json"}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_parliament_finds_nothing_above_low(path: Path) -> None:
    result = analyze_policy_string(path.read_text(), ignore_private_auditors=True)
    findings = [enhance_finding(f) for f in result.findings]
    above_low = [(f.issue, f.detail) for f in findings if SEVERITIES.index(f.severity) > 2]
    assert [f for f in above_low if (path.name, f[0]) not in JUSTIFIED] == []


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_no_wildcard_action_and_every_star_resource_is_explained(path: Path) -> None:
    for statement in statements(path):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            service, _, name = action.partition(":")
            assert name and "*" not in action, action
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert "NoResourceLevelPermissions" in statement["Sid"] or statement["Sid"] == "WhoAmI"
            else:
                # A REST API's id is random, a web ACL and a topic are the team's own.
                assert "stsvend" in resource or resource.startswith(
                    ("arn:aws:apigateway:*::/restapis", "arn:aws:apigateway:*::/account", "arn:aws:wafv2:",
                     "arn:aws:sns:", "arn:aws:cloudformation:*:aws:transform/")
                ), resource


def test_pass_role_only_to_the_service_it_is_for() -> None:
    for path in POLICIES:
        for statement in statements(path):
            if "iam:PassRole" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["iam:PassRole"]
                assert "iam:PassedToService" in statement["Condition"]["StringEquals"]
