"""The checkout commands (stsvend.checkout) against emulated AWS (moto, in process): grants
plan/apply/list with conditional writes, bootstrap of the grants table, and the target roles' trust policy."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from moto import mock_aws

from chalicelib.grant_store import from_attribute, to_attribute
from stsvend.checkout import commands
from stsvend.checkout.apply import apply_changes
from stsvend.checkout.grants_file import load_grants_file
from stsvend.checkout.plan import plan_changes
from stsvend.checkout.table import create_table
from stsvend.cli import main

ROOT = Path(__file__).resolve().parents[2]
SESSION_DIR = ROOT / "policies" / "session"
TABLE = "stsvend-grants-local"  # the local stage's STSVEND_GRANTS_TABLE
JENKINS = "arn:aws:iam::111111111111:user/jenkins"
SAMPLE_APP = "arn:aws:iam::111111111111:user/sample-app"
NEWCOMER = "arn:aws:iam::111111111111:role/ci-runner"
SERVICE_ROLE = "arn:aws:iam::111111111111:role/stsvend-dev"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.chdir(ROOT)
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return botocore.session.get_session().create_client("dynamodb")


@pytest.fixture
def table(dynamodb: Any) -> str:
    create_table(dynamodb, TABLE)
    return TABLE


def local_grants() -> list[dict[str, Any]]:
    """The local grants file's entries: IAM grants first, then OIDC issuers and grants."""
    entries: list[dict[str, Any]] = json.loads((ROOT / "policies" / "grants" / "local.json").read_text())
    return entries


def iam_principals(items: dict[str, Any]) -> set[str]:
    return {principal for principal in items if principal.startswith("arn:")}


def grants_file(tmp_path: Path, grants: list[dict[str, Any]]) -> str:
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(grants))
    return str(path)


def grants(action: str, file: str | None = None) -> int:
    return main(["grants", action, "--stage", "local", *(["--file", file] if file else [])])


def stored(dynamodb: Any) -> dict[str, dict[str, Any]]:
    items = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return {item["principal"]["S"]: {k: from_attribute(v) for k, v in item.items()} for item in items}


def apply_local(capsys: pytest.CaptureFixture[str]) -> None:
    assert grants("apply") == 0
    capsys.readouterr()


# --- grants plan / apply -------------------------------------------------------------------------


def test_plan_against_an_empty_table_lists_additions_and_writes_nothing(
    dynamodb: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grants("plan") == 0

    out = capsys.readouterr().out
    assert f"+ {JENKINS}" in out and f"+ {SAMPLE_APP}" in out
    # The OIDC issuers and grants of the file are planned as the IAM grants are.
    assert "+ issuer:github-local" in out and "+ grant:octo-repo-main-reads-ec2" in out
    assert "9 to add, 0 to change, 0 to remove" in out
    assert stored(dynamodb) == {}


def test_apply_writes_the_stored_form_and_a_second_plan_has_no_changes(
    dynamodb: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grants("apply") == 0
    assert "Applied: 9 to add" in capsys.readouterr().out

    items = stored(dynamodb)
    expected = {g.principal: g.to_item() for g in load_grants_file(
        ROOT / "policies" / "grants" / "local.json", SESSION_DIR)}
    assert set(items) == set(expected)
    for principal, item in items.items():
        assert item.pop("version") == 1
        assert item.pop("updated_at").endswith("Z")
        assert item.pop("updated_by").startswith("arn:aws:")
        assert item == expected[principal]

    assert grants("plan") == 0
    out = capsys.readouterr().out
    assert "No changes." in out
    assert "to add" not in out


def test_a_changed_grant_shows_the_field_and_apply_bumps_its_version(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_local(capsys)
    changed = local_grants()
    changed[1]["roles"][0]["max_duration_seconds"] = 900
    changed[1]["enabled"] = False
    file = grants_file(tmp_path, changed)

    assert grants("plan", file) == 0
    out = capsys.readouterr().out
    assert f"~ {JENKINS}" in out
    assert "roles[0].max_duration_seconds: 3600 -> 900" in out
    assert "enabled: true -> false" in out
    assert "0 to add, 1 to change, 0 to remove" in out
    assert stored(dynamodb)[JENKINS]["roles"][0]["max_duration_seconds"] == 3600

    assert grants("apply", file) == 0
    capsys.readouterr()
    jenkins = stored(dynamodb)[JENKINS]
    assert jenkins["roles"][0]["max_duration_seconds"] == 900
    assert jenkins["enabled"] is False
    assert jenkins["version"] == 2
    assert stored(dynamodb)[SAMPLE_APP]["version"] == 1
    assert grants("plan", file) == 0
    assert "No changes." in capsys.readouterr().out


def test_a_grant_missing_from_the_file_is_removed(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_local(capsys)
    file = grants_file(tmp_path, [g for g in local_grants() if g.get("principal") != JENKINS])

    assert grants("plan", file) == 0
    out = capsys.readouterr().out
    assert f"- {JENKINS}" in out
    assert "0 to add, 0 to change, 1 to remove" in out

    assert grants("apply", file) == 0
    assert iam_principals(stored(dynamodb)) == {SAMPLE_APP}


def _bump_version(dynamodb: Any, principal: str) -> None:
    """Someone else changes the item: a concurrent apply, or an edit by hand."""
    dynamodb.update_item(
        TableName=TABLE,
        Key={"account_id": {"S": "111111111111"}, "principal": {"S": principal}},
        UpdateExpression="SET version = version + :one, description = :d",
        ExpressionAttributeValues={":one": {"N": "1"}, ":d": {"S": "edited concurrently"}},
    )


def test_a_concurrent_change_fails_the_apply_and_writes_nothing(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply_local(capsys)
    desired = [g for g in local_grants() if g.get("principal") != JENKINS]  # remove jenkins
    desired[0]["description"] = "changed by the file"  # change sample-app
    newcomer = copy.deepcopy(desired[0])
    newcomer["principal"] = NEWCOMER  # add a grant
    file = grants_file(tmp_path, [*desired, newcomer])
    real_plan = commands.plan_changes

    def plan_then_concurrent_change(*args: Any) -> Any:
        plan = real_plan(*args)
        _bump_version(dynamodb, SAMPLE_APP)
        return plan

    monkeypatch.setattr(commands, "plan_changes", plan_then_concurrent_change)
    before = stored(dynamodb)

    assert grants("apply", file) == 1

    captured = capsys.readouterr()
    assert "1 to add, 1 to change, 1 to remove" in captured.out
    assert "the table changed since the plan" in captured.err
    assert "run plan again" in captured.err
    assert SAMPLE_APP in captured.err
    assert "Applied before the failure:\n  (none)" in captured.out
    assert "Applied:" not in captured.out
    after = stored(dynamodb)
    assert iam_principals(after) == {JENKINS, SAMPLE_APP}  # not added, not removed
    assert after[JENKINS] == before[JENKINS]
    assert after[SAMPLE_APP]["description"] == "edited concurrently"
    assert after[SAMPLE_APP]["version"] == 2


def test_a_grant_added_concurrently_fails_the_apply(dynamodb: Any, table: str) -> None:
    wanted = load_grants_file(ROOT / "policies" / "grants" / "local.json", SESSION_DIR)
    plan = plan_changes(dynamodb, TABLE, wanted)
    by_hand = {k: to_attribute(v) for k, v in wanted[0].to_item().items()}
    dynamodb.put_item(TableName=TABLE, Item=by_hand)

    result = apply_changes(dynamodb, TABLE, plan)

    assert not result.ok
    assert result.applied == ()
    assert iam_principals({c.principal: c for c in result.not_applied}) == {JENKINS, SAMPLE_APP}
    assert "the table changed since the plan" in (result.error or "")
    assert set(stored(dynamodb)) == {wanted[0].principal}
    assert "version" not in stored(dynamodb)[wanted[0].principal]


def _many_grants(tmp_path: Path, count: int) -> list[Any]:
    role = {"role_arn": "arn:aws:iam::111111111111:role/read-only"}
    entries = [
        {"principal": f"arn:aws:iam::111111111111:user/u{n:03}", "roles": [role]}
        for n in range(count)
    ]
    return load_grants_file(Path(grants_file(tmp_path, entries)), SESSION_DIR)


def test_more_than_100_changes_are_applied_in_several_transactions(
    dynamodb: Any, table: str, tmp_path: Path
) -> None:
    wanted = _many_grants(tmp_path, 150)

    result = apply_changes(dynamodb, TABLE, plan_changes(dynamodb, TABLE, wanted))

    assert result.ok
    assert len(result.applied) == 150
    assert result.transactions == 4  # 150 written disabled, then 150 as planned
    assert len(stored(dynamodb)) == 150
    assert all(item["enabled"] is True for item in stored(dynamodb).values())
    assert plan_changes(dynamodb, TABLE, wanted).empty


def test_a_conflict_in_a_later_transaction_reports_exactly_what_was_applied_and_left_disabled(
    dynamodb: Any, table: str, tmp_path: Path
) -> None:
    wanted = _many_grants(tmp_path, 150)
    plan = plan_changes(dynamodb, TABLE, wanted)
    late = wanted[130]
    dynamodb.put_item(
        TableName=TABLE, Item={k: to_attribute(v) for k, v in late.to_item().items()}
    )

    result = apply_changes(dynamodb, TABLE, plan)

    # The first step (every grant written disabled) stops at the conflict: what it wrote denies.
    assert not result.ok
    assert result.applied == ()
    assert [c.principal for c in result.not_applied] == [g.principal for g in wanted]
    assert [c.principal for c in result.disabled] == [g.principal for g in wanted[:100]]
    assert late.principal in (result.error or "")
    items = stored(dynamodb)
    assert set(items) == {g.principal for g in wanted[:100]} | {late.principal}
    assert all(items[g.principal]["enabled"] is False for g in wanted[:100])
    assert items[late.principal]["enabled"] is True and "version" not in items[late.principal]


def test_an_item_written_by_hand_in_the_stored_form_is_not_a_change(
    dynamodb: Any, table: str, tmp_path: Path
) -> None:
    wanted = load_grants_file(ROOT / "policies" / "grants" / "local.json", SESSION_DIR)
    for grant in wanted:
        item = {k: to_attribute(v) for k, v in grant.to_item().items()}
        dynamodb.put_item(TableName=TABLE, Item=item)

    assert plan_changes(dynamodb, TABLE, wanted).empty

    edited = local_grants()
    edited[0]["description"] = "new words"
    plan = plan_changes(dynamodb, TABLE, load_grants_file(
        Path(grants_file(tmp_path, edited)), SESSION_DIR))
    assert [(c.kind, c.principal) for c in plan.changes] == [("change", SAMPLE_APP)]
    assert apply_changes(dynamodb, TABLE, plan).ok
    assert stored(dynamodb)[SAMPLE_APP]["description"] == "new words"
    assert stored(dynamodb)[SAMPLE_APP]["version"] == 1


def test_an_invalid_file_is_refused_before_anything_is_written(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = local_grants()
    bad[1]["roles"][0]["max_duration_seconds"] = 7200

    assert grants("apply", grants_file(tmp_path, bad)) == 1

    err = capsys.readouterr().err
    assert JENKINS in err and "roles[0].max_duration_seconds" in err
    assert stored(dynamodb) == {}


def test_plan_without_a_table_says_to_bootstrap(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grants("plan") == 1

    err = capsys.readouterr().err
    assert f"table {TABLE} does not exist" in err
    assert "stsvend bootstrap --stage local" in err


def test_an_unknown_stage_is_refused(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grants", "plan", "--stage", "staging"]) == 1

    assert "no stage 'staging'" in capsys.readouterr().err


def test_admin_commands_outside_a_checkout_fail_clearly(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert grants("plan") == 1
    assert main(["bootstrap", "--stage", "local"]) == 1
    assert main(["trust-policy", "--service-role", SERVICE_ROLE]) == 1

    err = capsys.readouterr().err
    assert err.count("not in an stsvend checkout") == 3
    assert "--root" in err


def test_root_option_finds_the_checkout_from_elsewhere(
    dynamodb: Any, table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert main(["grants", "apply", "--stage", "local", "--root", str(ROOT)]) == 0
    assert iam_principals(stored(dynamodb)) == {JENKINS, SAMPLE_APP}
    assert "issuer:github-local" in stored(dynamodb)


# --- grants list ---------------------------------------------------------------------------------


def test_list_shows_each_grant_with_its_roles_and_state(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = local_grants()
    entries[0]["enabled"] = False
    entries[0]["not_after"] = "2027-06-30T00:00:00Z"
    assert grants("apply", grants_file(tmp_path, entries)) == 0
    dynamodb.put_item(TableName=TABLE, Item={
        "account_id": {"S": "111111111111"}, "principal": {"S": NEWCOMER},
        "roles": {"S": "not a list"},
    })
    capsys.readouterr()

    assert grants("list") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "ENABLED", "NOT_AFTER", "ROLES"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows[JENKINS] == ["yes", "-", "arn:aws:iam::222222222222:role/deployer"]
    assert rows[SAMPLE_APP] == [
        "no", "2027-06-30T00:00:00Z", "arn:aws:iam::111111111111:role/read-only"
    ]
    assert rows[NEWCOMER][0] == "BROKEN"


def test_list_of_an_empty_table(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert grants("list") == 0

    assert f"No grants in table {TABLE}." in capsys.readouterr().out


# --- bootstrap -----------------------------------------------------------------------------------


def _assert_table_is_right(dynamodb: Any) -> None:
    description = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert description["KeySchema"] == [
        {"AttributeName": "account_id", "KeyType": "HASH"},
        {"AttributeName": "principal", "KeyType": "RANGE"},
    ]
    assert sorted(
        (a["AttributeName"], a["AttributeType"]) for a in description["AttributeDefinitions"]
    ) == [("account_id", "S"), ("principal", "S")]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["SSEDescription"]["Status"] == "ENABLED"
    assert description["DeletionProtectionEnabled"] is True
    backups = dynamodb.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_bootstrap_creates_the_grants_table(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bootstrap", "--stage", "local"]) == 0

    assert f"Created table {TABLE}" in capsys.readouterr().out
    _assert_table_is_right(dynamodb)


def test_bootstrap_is_idempotent_and_restores_point_in_time_recovery(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bootstrap", "--stage", "local"]) == 0
    dynamodb.update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    capsys.readouterr()

    assert main(["bootstrap", "--stage", "local"]) == 0

    out = capsys.readouterr().out
    assert f"Table {TABLE} already exists." in out
    assert "Point-in-time recovery is on" in out
    _assert_table_is_right(dynamodb)


def test_bootstrap_refuses_a_table_with_another_key_schema(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    assert main(["bootstrap", "--stage", "local"]) == 1

    assert "account_id (HASH) and principal (RANGE)" in capsys.readouterr().err


def test_bootstrap_table_option_overrides_the_stage_setting(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bootstrap", "--stage", "local", "--table", "other-grants"]) == 0

    assert dynamodb.list_tables()["TableNames"] == ["other-grants"]


# --- trust-policy --------------------------------------------------------------------------------


def trust_policy(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["trust-policy", "--service-role", SERVICE_ROLE, *extra]) == 0
    policy: dict[str, Any] = json.loads(capsys.readouterr().out)
    return policy


def test_trust_policy_with_external_id(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    policy = trust_policy(capsys, "--external-id", "stsvend-dev")

    assert "${" not in json.dumps(policy)
    assert all(s["Principal"] == {"AWS": SERVICE_ROLE} for s in policy["Statement"])
    assume = next(s for s in policy["Statement"] if s["Action"] == "sts:AssumeRole")
    assert assume["Condition"]["StringEquals"] == {"sts:ExternalId": "stsvend-dev"}
    tagging = next(s for s in policy["Statement"] if s["Action"] != "sts:AssumeRole")
    assert set(tagging["Action"]) == {"sts:TagSession", "sts:SetSourceIdentity"}


def test_trust_policy_without_external_id_drops_the_condition(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = trust_policy(capsys)

    text = json.dumps(policy)
    assert "${" not in text
    assert "sts:ExternalId" not in text
    assume = next(s for s in policy["Statement"] if s["Action"] == "sts:AssumeRole")
    assert assume["Principal"] == {"AWS": SERVICE_ROLE}
    assert assume["Condition"] == {"StringLike": {"aws:RequestTag/stsvend:caller": "arn:*"}}


def test_trust_policy_admits_oidc_callers_only_when_asked(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OIDC vend tags its session `stsvend:caller` = oidc:<issuer>:<grant>: the default `arn:*`
    does not match it; `--allowed-caller` patterns replace the default in both statements."""
    policy = trust_policy(capsys, "--allowed-caller", "arn:*", "--allowed-caller", "oidc:github:*")
    assert [s["Condition"]["StringLike"] for s in policy["Statement"]] == [
        {"aws:RequestTag/stsvend:caller": ["arn:*", "oidc:github:*"]}
    ] * 2
    assert main(["trust-policy", "--service-role", SERVICE_ROLE, "--allowed-caller", "oidc:github *"]) == 2
    captured = capsys.readouterr()
    assert "--allowed-caller must be a pattern" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111111111111:user/stsvend",
        "arn:aws:iam::*:role/stsvend",
        "stsvend-dev",
        SERVICE_ROLE + "\n",  # `$` would match before a trailing newline
    ],
)
def test_trust_policy_refuses_a_service_role_that_is_not_a_role_arn(
    aws: None, capsys: pytest.CaptureFixture[str], arn: str
) -> None:
    # A bad argument exits 2, as argparse's and the ops commands' do (docs/client.md: 2
    # for a bad request).
    assert main(["trust-policy", "--service-role", arn]) == 2

    captured = capsys.readouterr()
    assert "--service-role must be an IAM role ARN" in captured.err
    assert captured.out == ""


def test_trust_policy_refuses_a_malformed_external_id(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trust-policy", "--service-role", SERVICE_ROLE, "--external-id", "a b"]) == 2

    assert "--external-id must be" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("service_role", "external_id", "refused"),
    [
        ("arn:aws:iam::" + "\uff11" * 12 + ":role/stsvend-dev", None, "--service-role"),
        (SERVICE_ROLE, "stsvend-d\u00e9v", "--external-id"),
        (SERVICE_ROLE, "stsvend-\uff11\uff12", "--external-id"),
        (SERVICE_ROLE, "stsvend-\u0661", "--external-id"),
    ],
    ids=["full-width-account", "accented-external-id", "full-width-external-id", "arabic-digit"],
)
def test_trust_policy_refuses_non_ascii_identifiers(
    aws: None, capsys: pytest.CaptureFixture[str], service_role: str, external_id: str | None,
    refused: str,
) -> None:
    extra = ["--external-id", external_id] if external_id is not None else []

    assert main(["trust-policy", "--service-role", service_role, *extra]) == 2

    captured = capsys.readouterr()
    assert f"{refused} must be" in captured.err
    assert captured.out == ""


# --- issue 10: the allow-list as code at plan time -----------------------------------------------


def test_plan_refuses_non_ascii_identifiers_and_case_twins_before_reading_the_table(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full_width = local_grants()
    full_width[1]["principal"] = "arn:aws:iam::" + "\uff11" * 12 + ":user/jenkins"
    twins = local_grants()
    twins.append({**twins[1], "principal": JENKINS.replace("jenkins", "Jenkins")})
    repeated = json.dumps(local_grants())[:-2] + ', "enabled": false, "enabled": true}]'
    repeated_file = tmp_path / "repeated.json"
    repeated_file.write_text(repeated)

    assert grants("apply", grants_file(tmp_path, full_width)) == 1
    assert "principal must be ASCII" in capsys.readouterr().err
    assert grants("apply", grants_file(tmp_path, twins)) == 1
    err = capsys.readouterr().err
    assert JENKINS in err and JENKINS.replace("jenkins", "Jenkins") in err
    assert "differs only in case" in err
    assert grants("plan", str(repeated_file)) == 1
    assert "repeats the key 'enabled'" in capsys.readouterr().err
    assert stored(dynamodb) == {}


HOSTILE = (
    "arn:aws:iam::111111111111:user/x\x1b[2K\rPlan: 0 to add, 0 to change, 0 to remove.\x1b[8m"
    "\u202egnp.exe\u2066"
)


def _assert_terminal_safe(out: str) -> None:
    assert all(" " <= char <= "~" or char == "\n" for char in out), repr(out)


def test_plan_and_list_escape_what_they_read_from_the_table(
    dynamodb: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_local(capsys)
    dynamodb.put_item(TableName=TABLE, Item={
        "account_id": {"S": "111111111111"}, "principal": {"S": HOSTILE},
        "roles": {"L": [{"M": {"role_arn": {"S": "arn:aws:iam::111111111111:role/x\x1b]0;t\x07"}}}]},
    })
    dynamodb.update_item(
        TableName=TABLE,
        Key={"account_id": {"S": "111111111111"}, "principal": {"S": JENKINS}},
        UpdateExpression="SET description = :d, #odd = :o",
        ExpressionAttributeNames={"#odd": "note\x1b[1A\r"},
        ExpressionAttributeValues={":d": {"S": "ok\r\x1b[31mDENY\u202e"}, ":o": {"S": "x"}},
    )

    assert grants("plan") == 0
    out = capsys.readouterr().out
    _assert_terminal_safe(out)
    assert "- arn:aws:iam::111111111111:user/x\\x1b[2K\\rPlan: 0 to add" in out
    assert "\\u202egnp.exe\\u2066" in out
    assert '    description: "ok\\\\r\\\\u001b[31mDENY\\\\u202e" -> ' in out
    assert "    note\\x1b[1A\\r: " in out
    assert out.count("Plan: ") == 2  # the real summary, and the escaped one inside the principal
    assert "0 to add, 1 to change, 1 to remove" in out

    assert grants("list") == 0
    out = capsys.readouterr().out
    _assert_terminal_safe(out)
    assert "x\\x1b[2K\\rPlan:" in out and "BROKEN" in out


def test_plan_warns_about_wide_grants_naming_them(
    dynamodb: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = {"role_arn": "arn:aws:iam::111111111111:role/read-only", "session_policy": "ec2-read-only"}
    bare = {"role_arn": "arn:aws:iam::222222222222:role/deployer"}
    managed = {"role_arn": "arn:aws:iam::111111111111:role/audit",
               "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]}
    entries = [
        {"principal": "arn:aws:iam::111111111111:user/*", "roles": [role]},
        {"principal": "arn:aws:iam::222222222222:role/**", "roles": [role]},
        {"principal": "arn:aws:iam::111111111111:role/ci-*", "roles": [role, bare]},
        {"principal": JENKINS, "roles": [managed]},
    ]

    assert grants("plan", grants_file(tmp_path, entries)) == 0

    out = capsys.readouterr().out
    warnings = out.split("Warnings (valid, but wide: look twice):\n")[1].splitlines()
    assert warnings == [
        "  ! grant arn:aws:iam::111111111111:user/*: matches every user of account 111111111111"
        " (account-wide pattern)",
        "  ! grant arn:aws:iam::222222222222:role/**: matches every role of account 222222222222"
        " (account-wide pattern)",
        "  ! grant arn:aws:iam::111111111111:role/ci-*: role arn:aws:iam::222222222222:role/deployer"
        " has no session policy: its sessions get all of the role's permissions",
    ]


def test_plan_of_a_narrow_file_has_no_warnings(
    dynamodb: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grants("plan") == 0

    assert "Warnings" not in capsys.readouterr().out


def test_an_apply_failure_lists_what_it_left_disabled_escaped() -> None:
    from stsvend.checkout.apply import ApplyResult
    from stsvend.checkout.plan import GrantChange

    def change(kind: Any, principal: str) -> GrantChange:
        return GrantChange(kind, "111111111111", principal, item=None, current=None, version=None)

    added, hostile = change("add", NEWCOMER), change("remove", HOSTILE)
    result = ApplyResult(
        applied=(), not_applied=(added, hostile), disabled=(added, hostile), error="conflict"
    )

    text = commands.format_apply_failure(result)

    _assert_terminal_safe(text)
    assert text.splitlines()[-3:] == [
        "Left disabled, denying until apply runs again:",
        f"  + {NEWCOMER}",
        "  - arn:aws:iam::111111111111:user/x\\x1b[2K\\rPlan: 0 to add, 0 to change, 0 to remove."
        "\\x1b[8m\\u202egnp.exe\\u2066",
    ]
