"""`stsvend revoke` against the emulator's IAM (a moto server on loopback): without --apply nothing
is written; with it the policy is on the role, merged idempotently; a policy that would not fit, or
one stsvend did not write, is refused with nothing written; an access key is traced to its request
through the audit log. moto does not evaluate aws:PrincipalTag or aws:TokenIssueTime conditions, so
what the policy denies is checked in tests/unit/test_ops_revoke.py, not here."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from stsvend.cli import main
from stsvend.ops.revoke import POLICY_NAME, TAG_CALLER, TAG_REQUEST_ID

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
KEYS = {"aws_access_key_id": "AKIDREVOKETEST", "aws_secret_access_key": "not-a-secret"}
REQUEST_ID = "c0ffee00-1234-4bcd-9876-0123456789ab"
ROOT = Path(__file__).resolve().parents[2]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture
def iam(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "STSVEND_LOCAL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return boto3.client("iam", region_name=REGION, endpoint_url=moto_url, **KEYS)


@pytest.fixture
def role(iam: Any) -> str:
    name = f"deployer-{uuid.uuid4().hex[:8]}"
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    return arn


def policy_on(iam: Any, role: str) -> dict[str, Any] | None:
    name = role.rsplit("/", 1)[1]
    if POLICY_NAME not in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        return None
    document: dict[str, Any] = iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
    return document


def test_without_apply_nothing_is_written(iam: Any, role: str, capsys: Any) -> None:
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID]) == 0
    out = capsys.readouterr().out
    assert f"+ deny request {REQUEST_ID}, issued before " in out
    assert "Dry run: nothing written; add --apply to write it." in out
    assert policy_on(iam, role) is None


def test_apply_puts_the_policy_on_the_role_and_a_second_run_changes_nothing(
    iam: Any, role: str, capsys: Any
) -> None:
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    assert f"Written: {POLICY_NAME} on {role.rsplit('/', 1)[1]}." in capsys.readouterr().out
    first = policy_on(iam, role)
    assert first is not None
    [statement] = first["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"]["StringEquals"] == {
        TAG_REQUEST_ID: [REQUEST_ID]
    }

    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    assert "No change." in capsys.readouterr().out
    assert policy_on(iam, role) == first

    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/jenkins-agent/i-0abc"
    assert main(["revoke", "--role", role, "--caller", caller, "--apply", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    both = policy_on(iam, role)
    assert both is not None
    by_kind = {s["Sid"].removeprefix("StsvendRevoke")[:-16]: s for s in both["Statement"]}
    assert sorted(by_kind) == ["Caller", "Request"] and by_kind["Request"] == statement
    assert by_kind["Caller"]["Condition"]["StringEqualsIgnoreCase"] == {
        TAG_CALLER: [f"arn:aws:iam::{ACCOUNT}:role/jenkins-agent"]
    }
    # A revoked caller: what stops new vends (no grant in this repository admits it).
    assert f"To stop new vends for arn:aws:iam::{ACCOUNT}:role/jenkins-agent" in out
    assert "no grant in policies/grants/ admits" in out


def test_a_policy_that_would_not_fit_is_refused_and_nothing_is_written(
    iam: Any, role: str, capsys: Any
) -> None:
    name = role.rsplit("/", 1)[1]
    big = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"S{i}",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::bucket-with-a-long-name-{i:04d}/*",
            }
            for i in range(140)
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="existing", PolicyDocument=json.dumps(big))
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 1
    err = capsys.readouterr().err
    assert "the policy would not fit" in err and "IAM allows 10,240; nothing was written" in err
    assert policy_on(iam, role) is None


def test_a_policy_of_the_same_name_that_stsvend_did_not_write_is_left_alone(
    iam: Any, role: str, capsys: Any
) -> None:
    name = role.rsplit("/", 1)[1]
    theirs = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Theirs", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(theirs))
    assert main(["revoke", "--role", role, "--all-before-now", "--apply"]) == 1
    assert "holds a statement stsvend did not write (Sid 'Theirs')" in capsys.readouterr().err
    assert policy_on(iam, role) == theirs


def test_an_access_key_is_revoked_through_its_request_in_the_audit_log(
    iam: Any, role: str, tmp_path: Path, capsys: Any
) -> None:
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S,000+0000")
    log = tmp_path / "api.log"
    log.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "event": "credentials.vended",
                "request_id": REQUEST_ID,
                "role_arn": role,
                "caller_principal": "arn:aws:iam::111111111111:user/jenkins",
                "access_key_id": "ASIAEXAMPLEKEY000001",
            }
        )
        + "\n"
    )
    argv = ["revoke", "--role", role, "--access-key-id", "ASIAEXAMPLEKEY000001"]
    assert main(argv) == 2
    assert "--access-key-id needs the audit log" in capsys.readouterr().err
    assert main([*argv, "--log", str(log), "--apply"]) == 0
    assert f"ASIAEXAMPLEKEY000001 was vended by request {REQUEST_ID}" in capsys.readouterr().out
    written = policy_on(iam, role)
    assert written is not None and written["Statement"][0]["Condition"]["StringEquals"] == {
        TAG_REQUEST_ID: [REQUEST_ID]
    }
    other = f"arn:aws:iam::{ACCOUNT}:role/someone-else"
    assert (
        main(["revoke", "--role", other, "--access-key-id", "ASIAEXAMPLEKEY000001", "--log", str(log)]) == 2
    )
    assert f"was vended for {role}, not {other}" in capsys.readouterr().err
    assert main([*argv[:-1], "ASIAEXAMPLEKEY000009", "--log", str(log)]) == 1
    assert "no vend of ASIAEXAMPLEKEY000009" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "arn:aws:iam::123456789012:role/x", "--request-id", "x'"], "--request-id must be"),
        (
            ["--role", "arn:aws:iam::123456789012:role/*", "--all-before-now"],
            "--role must be an IAM role ARN",
        ),
        (["--role", "arn:aws:iam::123456789012:role/x"], "name one of"),
        (
            ["--role", "arn:aws:iam::123456789012:role/x", "--all-before-now", "--request-id", REQUEST_ID],
            "name one of",
        ),
    ],
)
def test_bad_arguments_exit_2_before_any_aws_call(
    iam: Any, argv: list[str], message: str, capsys: Any
) -> None:
    assert main(["revoke", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_role_of_another_account_says_which_credentials_to_use(iam: Any, capsys: Any) -> None:
    assert main(["revoke", "--role", "arn:aws:iam::222222222222:role/nope", "--all-before-now"]) == 1
    assert "run with credentials of the role's account (222222222222)" in capsys.readouterr().err


def test_a_role_with_a_path_must_be_named_with_it(iam: Any, capsys: Any) -> None:
    name = f"pathed-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, Path="/ci/", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
        "Arn"
    ]
    assert main(["revoke", "--role", f"arn:aws:iam::{ACCOUNT}:role/{name}", "--all-before-now"]) == 1
    assert f"IAM has {arn}" in capsys.readouterr().err
    assert main(["revoke", "--role", arn, "--all-before-now", "--apply"]) == 0
    assert policy_on(iam, arn) is not None
