"""The grants file (policies/grants/<stage>.json): validated with the server's grant model, every
rejection naming the file, the grant and the field at fault."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.grants import GrantError
from chalicelib.policy import minify_session_policy
from stsvend.checkout.grants_file import load_grants_file

ROOT = Path(__file__).resolve().parents[2]
SESSION_DIR = ROOT / "policies" / "session"
JENKINS = "arn:aws:iam::111111111111:user/jenkins"

GOOD: dict[str, Any] = {
    "principal": JENKINS,
    "description": "Jenkins deploys to dev",
    "roles": [
        {
            "role_arn": "arn:aws:iam::222222222222:role/deployer",
            "max_duration_seconds": 3600,
            "session_policy": "ec2-deploy",
            "external_id": "stsvend-dev",
        }
    ],
}


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "grants.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def rejected(tmp_path: Path, grants: Any, session_dir: Path = SESSION_DIR) -> str:
    path = write(tmp_path, grants)
    with pytest.raises(GrantError) as info:
        load_grants_file(path, session_dir)
    message = str(info.value)
    assert str(path) in message
    return message


def with_grant(**changes: Any) -> list[dict[str, Any]]:
    grant = copy.deepcopy(GOOD)
    grant.update(changes)
    return [grant]


def with_role(**changes: Any) -> list[dict[str, Any]]:
    grant = copy.deepcopy(GOOD)
    grant["roles"][0].update(changes)
    return [grant]


def test_committed_local_grants_validate_with_the_real_session_policies() -> None:
    grants = load_grants_file(ROOT / "policies" / "grants" / "local.json", SESSION_DIR)

    by_principal = {g.principal: g for g in grants}
    iam = {p for p in by_principal if p.startswith("arn:")}
    assert iam == {JENKINS, "arn:aws:iam::111111111111:user/sample-app"}
    # The local stack's OIDC issuers, one of each kind, and grants for them.
    assert {p for p in by_principal if p.startswith("issuer:")} == {
        "issuer:github-local", "issuer:gitlab-local", "issuer:buildkite-local", "issuer:circleci-local"
    }
    deployer = by_principal[JENKINS].roles[0]
    assert deployer.session_policy == "ec2-deploy"
    assert deployer.session_policy_document == minify_session_policy(
        (SESSION_DIR / "ec2-deploy.json").read_text()
    )
    assert deployer.external_id == "stsvend-local"


def test_every_committed_grants_file_validates() -> None:
    for path in sorted((ROOT / "policies" / "grants").glob("*.json")):
        assert isinstance(load_grants_file(path, SESSION_DIR), list), path


def test_a_good_grant_is_stored_with_its_account_and_policy_document(tmp_path: Path) -> None:
    (grant,) = load_grants_file(write(tmp_path, [GOOD]), SESSION_DIR)

    item = grant.to_item()
    assert item["account_id"] == "111111111111"
    assert item["roles"][0]["session_policy"] == "ec2-deploy"
    assert json.loads(item["roles"][0]["session_policy_document"]) == json.loads(
        (SESSION_DIR / "ec2-deploy.json").read_text()
    )


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        pytest.param(with_grant(colour="red"), [JENKINS, "colour"], id="unknown-grant-field"),
        pytest.param(with_role(duration=900), [JENKINS, "roles[0]", "duration"],
                     id="unknown-role-field"),
        pytest.param(with_grant(principal="arn:aws:iam::1111:user/jenkins"),
                     ["arn:aws:iam::1111:user/jenkins", "principal"], id="bad-principal-arn"),
        pytest.param(with_grant(principal="arn:aws:iam::111111111111:group/ops"),
                     ["group/ops", "principal"], id="principal-not-role-or-user"),
        pytest.param(with_grant(principal="arn:aws:iam::*:role/x"),
                     ["arn:aws:iam::*:role/x", "principal"], id="wildcard-account"),
        pytest.param(with_grant(principal="arn:aws:iam::1111*:role/x"),
                     ["arn:aws:iam::1111*:role/x", "principal"], id="partial-wildcard-account"),
        pytest.param(with_role(role_arn="arn:aws:iam::222222222222:user/deployer"),
                     [JENKINS, "roles[0].role_arn"], id="bad-role-arn"),
        pytest.param(with_role(session_policy="no-such-policy"),
                     [JENKINS, "roles[0].session_policy", "no-such-policy"],
                     id="unknown-session-policy"),
        pytest.param(with_role(max_duration_seconds=3601),
                     [JENKINS, "roles[0].max_duration_seconds"], id="duration-above-3600"),
        pytest.param(with_grant(enabled="yes"), [JENKINS, "enabled"], id="enabled-not-bool"),
        pytest.param(with_grant(not_after="2027-06-30"), [JENKINS, "not_after"],
                     id="not-after-not-utc"),
        pytest.param(with_grant(roles=[]), [JENKINS, "roles"], id="no-roles"),
        pytest.param([GOOD, "arn:aws:iam::111111111111:user/x"], ["grants[1]", "object"],
                     id="grant-not-an-object"),
    ],
)
def test_invalid_grant_is_rejected_naming_grant_and_field(
    tmp_path: Path, grants: Any, expected: list[str]
) -> None:
    message = rejected(tmp_path, grants)

    for text in expected:
        assert text in message


def test_a_principal_granted_twice_is_rejected(tmp_path: Path) -> None:
    other = copy.deepcopy(GOOD)
    other["description"] = "the same principal again"

    message = rejected(tmp_path, [GOOD, other])

    assert JENKINS in message
    assert "principal" in message
    assert "grants[1]" in message and "grants[0]" in message


def test_bad_json_is_rejected_naming_the_file_and_place(tmp_path: Path) -> None:
    message = rejected(tmp_path, '[{"principal": "arn:aws:iam::111111111111:user/jenkins",}]')

    assert "not valid JSON" in message
    assert "line 1" in message


def test_a_file_that_is_not_a_list_is_rejected(tmp_path: Path) -> None:
    assert "must be a JSON list" in rejected(tmp_path, GOOD)


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(GrantError, match="cannot be read"):
        load_grants_file(tmp_path / "absent.json", SESSION_DIR)


def test_session_policies_come_from_the_given_directory(tmp_path: Path) -> None:
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    (session_dir / "ec2-deploy.json").write_text(json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }))

    (grant,) = load_grants_file(write(tmp_path, [GOOD]), session_dir)

    assert "s3:GetObject" in (grant.roles[0].session_policy_document or "")


def test_an_invalid_session_policy_is_rejected_naming_grant_and_policy(tmp_path: Path) -> None:
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    (session_dir / "ec2-deploy.json").write_text(json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
    }))

    message = rejected(tmp_path, [GOOD], session_dir)

    assert JENKINS in message
    assert "roles[0].session_policy" in message and "ec2-deploy" in message
    assert "Principal" in message


# --- issue 10.5: principals that differ only in case ------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (JENKINS, "arn:aws:iam::111111111111:user/Jenkins"),
        ("arn:aws:iam::111111111111:role/CI-*", "arn:aws:iam::111111111111:role/ci-*"),
    ],
    ids=["exact", "pattern"],
)
def test_principals_differing_only_in_case_are_refused_naming_both(
    tmp_path: Path, first: str, second: str
) -> None:
    other = copy.deepcopy(GOOD)
    other["principal"] = second

    message = rejected(tmp_path, [*with_grant(principal=first), other])

    assert first in message and second in message
    assert "grants[1]" in message and "grants[0]" in message
    assert "differs only in case" in message


# --- issue 10.6: repeated keys, deep nesting, bytes that are not UTF-8, size -------------------------


def test_a_repeated_key_in_a_grant_is_refused_naming_it(tmp_path: Path) -> None:
    text = json.dumps([GOOD])[:-2] + ', "enabled": false, "enabled": true}]'

    message = rejected(tmp_path, text)

    assert "repeats the key 'enabled'" in message


def test_a_repeated_key_in_a_role_is_refused(tmp_path: Path) -> None:
    text = json.dumps([GOOD]).replace(
        '"max_duration_seconds": 3600', '"max_duration_seconds": 900, "max_duration_seconds": 3600'
    )

    assert "repeats the key 'max_duration_seconds'" in rejected(tmp_path, text)


def _session_dir(tmp_path: Path, text: str | bytes) -> Path:
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    policy = session_dir / "ec2-deploy.json"
    if isinstance(text, bytes):
        policy.write_bytes(text)
    else:
        policy.write_text(text)
    return session_dir


def test_a_repeated_key_in_a_session_policy_file_is_refused_naming_key_and_file(
    tmp_path: Path,
) -> None:
    deny_then_allow = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Effect": "Allow",'
        ' "Action": "*", "Resource": "*"}]}'
    )
    session_dir = _session_dir(tmp_path, deny_then_allow)

    message = rejected(tmp_path, [GOOD], session_dir)

    assert "repeats the key 'Effect'" in message
    assert str(session_dir / "ec2-deploy.json") in message
    assert "ec2-deploy" in message and "grants[0]" in message


@pytest.mark.parametrize(
    "nested",
    ["[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_files_are_refused_clearly(tmp_path: Path, nested: str) -> None:
    assert "nests too deeply" in rejected(tmp_path, nested)

    session_dir = _session_dir(tmp_path, nested)
    message = rejected(tmp_path, [GOOD], session_dir)
    assert "nests too deeply" in message and "ec2-deploy.json" in message


def test_bytes_that_are_not_utf8_are_refused_naming_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    path.write_bytes(b'[{"principal": "\xff"}]')
    with pytest.raises(GrantError) as info:
        load_grants_file(path, SESSION_DIR)
    assert str(info.value) == f"{path}: is not UTF-8 (byte 0xff at offset 16)"

    session_dir = _session_dir(tmp_path, b'{"Version": "2012-10-17\xc3"}')
    message = rejected(tmp_path, [GOOD], session_dir)
    assert "is not UTF-8 (byte 0xc3 at offset 23)" in message


def test_files_over_the_size_limits_are_refused(tmp_path: Path) -> None:
    from stsvend.checkout.grants_file import MAX_GRANTS_FILE_BYTES, MAX_SESSION_POLICY_FILE_BYTES

    huge = "[" + " " * MAX_GRANTS_FILE_BYTES + "]"
    assert f"is larger than {MAX_GRANTS_FILE_BYTES} bytes" in rejected(tmp_path, huge)

    policy = json.loads((SESSION_DIR / "ec2-deploy.json").read_text())
    padded = json.dumps(policy, indent=MAX_SESSION_POLICY_FILE_BYTES // 10)
    assert len(padded.encode()) > MAX_SESSION_POLICY_FILE_BYTES
    message = rejected(tmp_path, [GOOD], _session_dir(tmp_path, padded))
    assert f"is larger than {MAX_SESSION_POLICY_FILE_BYTES} bytes" in message


# --- issue 10.8: AWS identifiers are ASCII -----------------------------------------------------------

FULL_WIDTH_ACCOUNT = "\uff11" * 12  # passes `\d{12}`


@pytest.mark.parametrize(
    ("grants", "field"),
    [
        pytest.param(with_grant(principal=f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:user/jenkins"),
                     "principal", id="full-width-account"),
        pytest.param(with_grant(principal="arn:aws:iam::11111111111\u0661:user/jenkins"),
                     "principal", id="arabic-indic-digit"),
        pytest.param(with_role(role_arn=f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:role/deployer"),
                     "roles[0].role_arn", id="full-width-role-account"),
        pytest.param(with_role(external_id="stsvend-d\u00e9v"), "roles[0].external_id",
                     id="accented-external-id"),
        pytest.param(with_role(external_id="stsvend-\uff11"), "roles[0].external_id",
                     id="full-width-external-id"),
        pytest.param(
            with_role(policy_arns=[f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:policy/p"]),
            "roles[0].policy_arns", id="full-width-policy-arn",
        ),
        pytest.param(with_grant(source_cidrs=["\uff11\uff10.0.0.0/8"]), "source_cidrs",
                     id="full-width-cidr"),
        pytest.param(with_grant(not_after="\uff12027-06-30T00:00:00Z"), "not_after",
                     id="full-width-year"),
    ],
)
def test_non_ascii_identifiers_are_refused(tmp_path: Path, grants: Any, field: str) -> None:
    message = rejected(tmp_path, grants)

    assert f"{field} must be ASCII" in message
    assert message.isascii()  # the offending character is shown escaped


def test_a_description_may_be_any_text(tmp_path: Path) -> None:
    (grant,) = load_grants_file(write(tmp_path, with_grant(description="Déploiement \u2014 dev")),
                                SESSION_DIR)

    assert grant.description == "Déploiement \u2014 dev"
