"""The target-account template (deploy/cloudformation/stsvend-target-role.json), applied to emulated
AWS as a StackSet applies it in each account: the role it creates trusts the service exactly as
`stsvend trust-policy` renders it (the checkout's trust template), with the external id only when
one is given, and its permissions boundary, managed policies and caller patterns when set. It also
passes cfn-lint, and its trust policy passes parliament."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from parliament import analyze_policy_string

from stsvend.checkout.checkout import Checkout
from stsvend.checkout.trust_policy import read_template, render_trust_policy

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "stsvend-target-role.json"
SERVICE = "arn:aws:iam::999999999999:role/stsvend-prod-api_handler"


def _attaching_managed_policies(original: Any) -> Any:
    """moto 5.2.5 creates an AWS::IAM::Role without its ManagedPolicyArns; CloudFormation attaches
    them. The gap is filled here, in this test's in-process emulator only."""

    def create(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
               region_name: str, **kwargs: Any) -> Any:
        role = original.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        from moto.iam.models import get_partition, iam_backends

        backend = iam_backends[account_id][get_partition(region_name)]
        for arn in cloudformation_json["Properties"].get("ManagedPolicyArns", []):
            backend.attach_role_policy(arn, role.name)
        return role

    return classmethod(create)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    from moto.iam.models import Role

    monkeypatch.setattr(Role, "create_from_cloudformation_json",
                        _attaching_managed_policies(Role.__dict__["create_from_cloudformation_json"]))
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield (boto3.client("cloudformation", region_name="eu-west-1"),
               boto3.client("iam", region_name="eu-west-1"))


def create(aws: tuple[Any, Any], name: str, **parameters: str) -> dict[str, Any]:
    cloudformation, iam = aws
    cloudformation.create_stack(
        StackName=f"stsvend-target-{name}", TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cloudformation.describe_stacks(StackName=f"stsvend-target-{name}")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    role: dict[str, Any] = iam.get_role(RoleName=parameters["RoleName"])["Role"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["RoleArn"] == role["Arn"]
    return role


def _single(value: Any) -> Any:
    """IAM takes a one-element list and a string alike; compare them alike."""
    if isinstance(value, list):
        return value[0] if len(value) == 1 else value
    if isinstance(value, dict):
        return {k: _single(v) for k, v in value.items()}
    return value


def rendered(external_id: str | None) -> dict[str, Any]:
    return render_trust_policy(read_template(Checkout.open(ROOT)), SERVICE, external_id)


@pytest.mark.parametrize("external_id", ["stsvend-prod", None])
def test_the_role_trusts_the_service_as_trust_policy_renders_it(
    aws: tuple[Any, Any], external_id: str | None
) -> None:
    extra = {"ExternalId": external_id} if external_id else {}
    role = create(aws, "plain", ServiceRoleArn=SERVICE, RoleName="deployer", **extra)
    assert _single(role["AssumeRolePolicyDocument"]) == _single(rendered(external_id))
    assert role["MaxSessionDuration"] == 3600 and role["Path"] == "/"
    assert "PermissionsBoundary" not in role
    assert aws[1].list_attached_role_policies(RoleName="deployer")["AttachedPolicies"] == []


def test_boundary_policies_path_and_caller_patterns(aws: tuple[Any, Any]) -> None:
    iam = aws[1]
    statement = {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    boundary = iam.create_policy(PolicyName="boundary", PolicyDocument=document)["Policy"]["Arn"]
    readers = [
        iam.create_policy(PolicyName=f"read-{n}", PolicyDocument=document)["Policy"]["Arn"] for n in (1, 2)
    ]
    callers = "arn:aws:iam::111111111111:role/ci-*,arn:aws:iam::111111111111:user/jenkins"
    role = create(aws, "full", ServiceRoleArn=SERVICE, RoleName="reader", RolePath="/stsvend-target/",
                  ExternalId="stsvend-prod", PermissionsBoundaryArn=boundary,
                  ManagedPolicyArns=",".join(readers), AllowedCallers=callers)
    assert role["Arn"].endswith(":role/stsvend-target/reader")
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    attached = iam.list_attached_role_policies(RoleName="reader")["AttachedPolicies"]
    assert sorted(p["PolicyArn"] for p in attached) == readers
    for statement in role["AssumeRolePolicyDocument"]["Statement"]:
        assert statement["Condition"]["StringLike"]["aws:RequestTag/stsvend:caller"] == callers.split(",")


def test_oidc_callers_are_admitted_as_trust_policy_renders_them(aws: tuple[Any, Any]) -> None:
    """OIDC callers' sessions (`stsvend:caller` = oidc:<issuer>:<grant>) only by an explicit pattern."""
    callers = ["arn:*", "oidc:github:*"]
    role = create(aws, "oidc", ServiceRoleArn=SERVICE, RoleName="ci-deployer", ExternalId="stsvend-prod",
                  AllowedCallers=",".join(callers))
    template = read_template(Checkout.open(ROOT))
    expected = render_trust_policy(template, SERVICE, "stsvend-prod", callers)
    assert _single(role["AssumeRolePolicyDocument"]) == _single(expected)


def test_the_template_passes_cfn_lint() -> None:
    lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(lint), "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_its_trust_policy_passes_parliament(aws: tuple[Any, Any]) -> None:
    role = create(aws, "lint", ServiceRoleArn=SERVICE, RoleName="deployer", ExternalId="stsvend-prod")
    policy = role["AssumeRolePolicyDocument"]
    for statement in policy["Statement"]:
        # parliament reads a policy as an identity policy; a trust policy's resource is its role.
        statement["Resource"] = role["Arn"]
    findings = analyze_policy_string(json.dumps(policy), ignore_private_auditors=True).findings
    assert [f.issue for f in findings] == []
