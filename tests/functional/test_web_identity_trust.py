"""`stsvend trust-policy --web-identity`: what a target account needs for a role granted in
web-identity mode. The trust policy pins the issuer's OIDC provider, the audience and the sub
(role and grant), passes parliament, and is the very policy the local guard's STS checks accept
for the named grant and refuse for another; the CloudFormation form passes cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stsvend.cli import main
from stsvend.local.webidentity import trust_allows
from tests.unit.test_iam_documents import above_low, analyze

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://abc123.execute-api.us-east-1.amazonaws.com/api"
PREFIX = "abc123.execute-api.us-east-1.amazonaws.com/api"
ROLE = "arn:aws:iam::222222222222:role/ci/long-jobs"
JENKINS = "arn:aws:iam::111111111111:role/jenkins"
PROVIDER = f"arn:aws:iam::222222222222:oidc-provider/{PREFIX}"
ACTIONS = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"]


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    assert main(["trust-policy", "--web-identity", "--issuer", ISSUER, "--role", ROLE, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _context(sub: str, aud: str = "stsvend") -> dict[str, list[str]]:
    return {f"{PREFIX}:aud": [aud], f"{PREFIX}:sub": [sub]}


def test_the_trust_policy_pins_provider_audience_and_sub(capsys: pytest.CaptureFixture[str]) -> None:
    policy = _run(capsys, "--grant", JENKINS)
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == ACTIONS
    assert statement["Condition"] == {
        "StringEquals": {f"{PREFIX}:aud": "stsvend", f"{PREFIX}:sub": [f"{ROLE}|{JENKINS}"]}
    }
    assert trust_allows(policy, ACTIONS, PROVIDER, _context(f"{ROLE}|{JENKINS}")) is None
    other_grant = _context(f"{ROLE}|arn:aws:iam::111111111111:role/other")
    assert trust_allows(policy, ACTIONS, PROVIDER, other_grant) == ACTIONS[0]
    other_role = _context(f"arn:aws:iam::222222222222:role/deployer|{JENKINS}")
    assert trust_allows(policy, ACTIONS, PROVIDER, other_role) == ACTIONS[0]
    assert trust_allows(policy, ACTIONS, PROVIDER, _context(f"{ROLE}|{JENKINS}", "other")) == ACTIONS[0]


def test_without_grants_any_grant_for_this_role_is_trusted(capsys: pytest.CaptureFixture[str]) -> None:
    policy = _run(capsys, "--audience", "stsvend-prod")
    assert policy["Statement"][0]["Condition"] == {
        "StringEquals": {f"{PREFIX}:aud": "stsvend-prod"},
        "StringLike": {f"{PREFIX}:sub": f"{ROLE}|*"},
    }
    context = _context(f"{ROLE}|{JENKINS}", "stsvend-prod")
    assert trust_allows(policy, ACTIONS, PROVIDER, context) is None
    assert (
        trust_allows(policy, ACTIONS, PROVIDER, _context(f"{ROLE}x|{JENKINS}", "stsvend-prod")) == ACTIONS[0]
    )


# parliament 1.6.4 knows a fixed list of federation sources (Cognito, Google, Facebook, Amazon) and
# their condition keys: any other OIDC provider, and its `<provider>:aud` / `:sub` keys, are
# "unknown" to it. IAM documents them for every OIDC provider
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif).
# Those findings, about our provider and its two keys, are the only ones allowed.
EXPECTED = {
    ("UNKNOWN_FEDERATION_SOURCE", PROVIDER),
    *(
        ("UNKNOWN_CONDITION_FOR_ACTION", f"Unknown condition {PREFIX}:{k} for action {a}")
        for k in ("aud", "sub")
        for a in ACTIONS
    ),
}


@pytest.mark.parametrize("grants", [[], [JENKINS, "arn:aws:iam::111111111111:role/ci-*"]])
def test_parliament_finds_nothing_above_low_but_the_custom_provider(
    capsys: pytest.CaptureFixture[str], grants: list[str]
) -> None:
    policy = _run(capsys, *[a for g in grants for a in ("--grant", g)])
    for statement in policy["Statement"]:
        statement["Resource"] = ROLE  # parliament reads a policy as an identity policy
    findings = {(f.issue, str(f.detail)) for f in analyze(policy) if above_low(f.severity)}
    assert findings == EXPECTED


def test_the_cloudformation_form_passes_cfn_lint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    template = _run(capsys, "--grant", JENKINS, "--format", "cloudformation")
    resources = template["Resources"]
    assert resources["StsvendIssuer"]["Properties"] == {"Url": ISSUER, "ClientIdList": ["stsvend"]}
    role = resources["Role"]["Properties"]
    assert (role["RoleName"], role["Path"], role["MaxSessionDuration"]) == ("long-jobs", "/ci/", 43200)
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"][f"{PREFIX}:sub"] == [
        f"{ROLE}|{JENKINS}"
    ]
    path = tmp_path / "target.json"
    path.write_text(json.dumps(template))
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--web-identity", "--role", ROLE],
        ["--web-identity", "--issuer", ISSUER],
        ["--web-identity", "--issuer", "http://example.com", "--role", ROLE],
        ["--web-identity", "--issuer", ISSUER, "--role", "arn:aws:iam::222222222222:user/x"],
        ["--web-identity", "--issuer", ISSUER, "--role", ROLE, "--grant", "jenkins"],
        ["--web-identity", "--issuer", ISSUER, "--role", ROLE, "--audience", "a b"],
        ["--web-identity", "--issuer", ISSUER, "--role", ROLE, "--external-id", "abc123"],
        [],
    ],
    ids=[
        "no-issuer",
        "no-role",
        "http",
        "not-a-role",
        "not-a-principal",
        "audience",
        "external-id",
        "nothing",
    ],
)
def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["trust-policy", *argv]) == 2
    assert capsys.readouterr().out == ""
