"""Rolling out trust to the target roles: stsvend's statements merged into a trust policy that other
principals share (idempotently, with a diff), written to a role with --apply, and `grants plan`
warning about a granted role that does not trust the service, where it can see that."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stsvend.checkout.trust_policy import merge_trust_policy, trusts
from stsvend.cli import main
from stsvend.errors import CommandError

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's
SERVICE = f"arn:aws:iam::{ACCOUNT}:role/stsvend-dev-api_handler"
OTHER = {
    "Sid": "AssumeFromCiRunner",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::333333333333:role/ci-runner"},
    "Action": "sts:AssumeRole",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.chdir(ROOT)
    with mock_aws():
        yield boto3.client("iam", region_name="eu-west-1")


def ours(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["trust-policy", "--service-role", SERVICE, "--external-id", "stsvend-dev"]) == 0
    policy: dict[str, Any] = json.loads(capsys.readouterr().out)
    return policy


def write(path: Path, policy: dict[str, Any]) -> str:
    path.write_text(json.dumps(policy))
    return str(path)


def test_merge_keeps_other_principals_and_a_second_merge_changes_nothing(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statements = ours(capsys)["Statement"]
    current = {"Version": "2012-10-17", "Statement": [OTHER]}
    args = ["trust-policy", "--service-role", SERVICE, "--external-id", "stsvend-dev", "--merge"]
    assert main([*args, write(tmp_path / "trust.json", current)]) == 0
    out, err = capsys.readouterr()
    merged = json.loads(out)
    assert merged["Statement"] == [OTHER, *statements]
    changed = [line for line in err.splitlines()[2:] if line[:1] in "+-" and not line.startswith("@@")]
    assert changed and all(line.startswith("+") for line in changed), err
    assert '+      "Sid": "AssumeFromStsvend",' in err

    assert main([*args, write(tmp_path / "merged.json", merged)]) == 0
    again, err = capsys.readouterr()
    assert json.loads(again) == merged and err.startswith("No changes")


def test_merge_replaces_a_stale_statement_of_stsvends_in_place(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service role recreated shows in IAM as a unique id (AROA...): the merge puts the ARN back."""
    statements = ours(capsys)["Statement"]
    stale = {**statements[0], "Principal": {"AWS": "AROAEXAMPLEUNIQUEID123"}}
    current = {"Version": "2012-10-17", "Statement": [stale, OTHER]}
    assert main(["trust-policy", "--service-role", SERVICE, "--external-id", "stsvend-dev", "--merge",
                 write(tmp_path / "t.json", current)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["Statement"] == [statements[0], OTHER, statements[1]]
    assert '-        "AWS": "AROAEXAMPLEUNIQUEID123"' in err


@pytest.mark.parametrize("bad", [
    "[]", '{"Statement": "x"}', '{"Statement": [1]}', "{", '{"a": 1, "a": 2}', "\ufeff{}x",
])
def test_merge_refuses_a_file_that_is_not_a_policy(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(bad)
    code = main(["trust-policy", "--service-role", SERVICE, "--merge", str(path)])
    assert code in (1, 2)
    out, err = capsys.readouterr()
    assert out == "" and "InvalidTrustPolicy" in err


def test_merge_of_nothing_is_stsvends_policy_and_a_single_statement_object_is_kept() -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow"}]}
    assert merge_trust_policy(None, policy, "x") == policy
    single = {"Version": "2012-10-17", "Statement": OTHER}
    assert merge_trust_policy(single, policy, "x")["Statement"] == [OTHER, policy["Statement"][0]]
    with pytest.raises(CommandError):
        merge_trust_policy({"Statement": [OTHER, "text"]}, policy, "x")


def test_role_name_shows_the_diff_then_applies_once(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam = aws
    iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [OTHER]}))
    args = ["trust-policy", "--service-role", SERVICE, "--external-id", "stsvend-dev",
            "--role-name", "deployer"]
    assert main(args) == 0
    assert "Dry run" in capsys.readouterr().out
    assert not trusts(iam.get_role(RoleName="deployer")["Role"]["AssumeRolePolicyDocument"], SERVICE)

    assert main([*args, "--apply"]) == 0
    assert "Updated the trust policy" in capsys.readouterr().out
    document = iam.get_role(RoleName="deployer")["Role"]["AssumeRolePolicyDocument"]
    assert trusts(document, SERVICE) and OTHER in document["Statement"]

    assert main([*args, "--apply"]) == 0
    assert capsys.readouterr().out.startswith("No changes")


@pytest.mark.parametrize("name", ["a/b", "", "x" * 65, "déployeur", "a b"])
def test_role_name_refuses_what_is_no_role_name(
    aws: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["trust-policy", "--service-role", SERVICE, "--role-name", name]) == 2
    assert "InvalidArgument" in capsys.readouterr().err


def test_apply_needs_a_role_name(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust-policy", "--service-role", SERVICE, "--apply"]) == 2


def test_grants_plan_warns_about_a_granted_role_that_does_not_trust_the_service(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iam = aws
    iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [OTHER]}))
    grants = [{
        "principal": "arn:aws:iam::111111111111:user/jenkins",
        "roles": [{"role_arn": f"arn:aws:iam::{ACCOUNT}:role/deployer"},
                  {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/missing"},
                  {"role_arn": "arn:aws:iam::222222222222:role/elsewhere"}],
    }]
    path = write(tmp_path / "grants.json", grants)  # type: ignore[arg-type]
    assert main(["bootstrap", "--stage", "dev"]) == 0
    capsys.readouterr()
    assert main(["grants", "plan", "--stage", "dev", "--file", path]) == 0
    out = capsys.readouterr().out
    assert f"role/deployer: does not trust {SERVICE}" in out
    assert "role/missing: does not exist" in out
    assert "1 granted role(s) in other accounts not checked" in out

    assert main(["trust-policy", "--service-role", SERVICE, "--role-name", "deployer", "--apply"]) == 0
    capsys.readouterr()
    assert main(["grants", "plan", "--stage", "dev", "--file", path]) == 0
    out = capsys.readouterr().out
    assert "role/deployer: does not trust" not in out and "role/missing: does not exist" in out
