"""Grant matching: exact beats pattern, the most specific pattern wins, one grant decides; every deny
reason; ambiguity (case, equal specificity) denies."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.errors import CallerNotAllowed, SourceNotAllowed
from chalicelib.grants import (
    BrokenGrant,
    Grant,
    GrantError,
    authorize_caller,
    case_collisions,
    deciding_grant,
    parse_grant,
    principal_matches,
    specificity,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
ROLE = {"role_arn": "arn:aws:iam::222222222222:role/deployer"}
POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'


def stored(principal: str, **fields: Any) -> Grant:
    return parse_grant(
        {"principal": principal, "account_id": principal.split(":")[4], "roles": [ROLE], **fields}
    )


def decide(grants: list[Any], principal: str, unique_id: str = "AROAX", ip: str = "10.0.0.1") -> Grant:
    return authorize_caller(grants, principal, unique_id, ip, NOW)


CI_BUILD = "arn:aws:iam::111111111111:role/ci-build"


def test_exact_beats_pattern() -> None:
    exact = stored(CI_BUILD, description="exact")
    pattern = stored("arn:aws:iam::111111111111:role/ci-*", description="pattern")
    assert decide([pattern, exact], CI_BUILD) is exact


def test_longest_pattern_wins() -> None:
    short = stored("arn:aws:iam::111111111111:role/ci-*")
    longer = stored("arn:aws:iam::111111111111:role/ci-bu*")
    assert decide([short, longer], CI_BUILD) is longer
    assert decide([short, longer], "arn:aws:iam::111111111111:role/ci-deploy") is short


def test_the_deciding_grant_decides_even_when_it_denies() -> None:
    # A disabled exact grant is not overridden by a broader pattern: one grant decides.
    exact = stored(CI_BUILD, enabled=False)
    pattern = stored("arn:aws:iam::111111111111:role/ci-*")
    with pytest.raises(CallerNotAllowed, match="disabled"):
        decide([exact, pattern], CI_BUILD)


def test_equally_long_matching_patterns_are_ambiguous_and_deny() -> None:
    a = stored("arn:aws:iam::111111111111:role/ci-*")
    b = stored("arn:aws:iam::111111111111:role/*ild")
    assert len(a.principal) == len(b.principal)
    with pytest.raises(CallerNotAllowed):
        decide([a, b], CI_BUILD)


def test_pattern_stays_in_the_name_part() -> None:
    pattern = stored("arn:aws:iam::111111111111:role/ci-*")
    with pytest.raises(CallerNotAllowed):
        decide([pattern], "arn:aws:iam::111111111111:user/ci-build")
    with pytest.raises(CallerNotAllowed):
        decide([pattern], "arn:aws:iam::111111111111:role/ci-x/../admin")


def test_a_broken_item_that_would_decide_denies() -> None:
    broken = BrokenGrant(CI_BUILD, "roles must be a non-empty list")
    pattern = stored("arn:aws:iam::111111111111:role/ci-*")
    with pytest.raises(CallerNotAllowed):
        decide([broken, pattern], CI_BUILD)


@pytest.mark.parametrize(
    ("fields", "unique_id", "ip", "error", "reason"),
    [
        ({"enabled": False}, "AROAX", "10.0.0.1", CallerNotAllowed, "disabled"),
        ({"not_after": "2026-11-28T12:00:00Z"}, "AROAX", "10.0.0.1", CallerNotAllowed, "expired"),
        (
            {"principal_id": "AROAORIGINAL00000001"},
            "AROARECREATED0000001",
            "10.0.0.1",
            CallerNotAllowed,
            "unique id",
        ),
        ({"source_cidrs": ["10.0.0.0/8"]}, "AROAX", "192.168.1.1", SourceNotAllowed, "source"),
        ({"source_cidrs": ["10.0.0.0/8"]}, "AROAX", "", SourceNotAllowed, "unknown"),
        ({"source_cidrs": ["2001:db8::/32"]}, "AROAX", "10.0.0.1", SourceNotAllowed, "source"),
    ],
)
def test_deny_reasons(
    fields: dict[str, Any], unique_id: str, ip: str, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        decide([stored(CI_BUILD, **fields)], CI_BUILD, unique_id, ip)


def test_no_grant_denies() -> None:
    with pytest.raises(CallerNotAllowed):
        decide([], CI_BUILD)


def test_allowed_cases() -> None:
    assert decide([stored(CI_BUILD, not_after="2026-11-28T12:00:01Z")], CI_BUILD)
    assert decide([stored(CI_BUILD, principal_id="AROAORIGINAL00000001")], CI_BUILD, "AROAORIGINAL00000001")
    assert decide(
        [stored(CI_BUILD, source_cidrs=["10.0.0.0/8", "2001:db8::/32"])], CI_BUILD, ip="2001:db8::1"
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"principal": "arn:aws:iam::*:role/x"}, "principal"),
        ({"principal": "arn:aws:iam::1111*:role/x"}, "principal"),
        ({"principal": "arn:aws:iam::111111111111:role/path/x"}, "principal"),
        ({"principal": "arn:aws:iam::111111111111:group/x"}, "principal"),
        ({"color": "red"}, "unknown field"),
        ({"roles": []}, "roles"),
        ({"roles": [{"role_arn": "arn:aws:iam::222222222222:role/*"}]}, "role_arn"),
        ({"roles": [{**ROLE, "max_duration_seconds": 3601}]}, "max_duration_seconds"),
        ({"roles": [{**ROLE, "max_duration_seconds": 899}]}, "max_duration_seconds"),
        ({"roles": [{**ROLE, "max_duration_seconds": True}]}, "max_duration_seconds"),
        ({"roles": [ROLE, ROLE]}, "twice"),
        ({"roles": [{**ROLE, "colour": 1}]}, "unknown field"),
        ({"request_tags": ["stsvend:caller"]}, "request_tags"),
        ({"request_tags": ["AWS:x"]}, "request_tags"),
        ({"request_tags": ["a", "A"]}, "request_tags"),
        ({"source_cidrs": ["10.0.0.1/8"]}, "source_cidrs"),
        ({"not_after": "2027-06-30"}, "not_after"),
        ({"enabled": "yes"}, "enabled"),
        ({"principal_id": "not-an-id"}, "principal_id"),
        (
            {"principal": "arn:aws:iam::111111111111:role/ci-*", "principal_id": "AROAORIGINAL00000001"},
            "principal_id",
        ),
        ({"roles": [{**ROLE, "session_policy": "missing"}]}, "unknown policy"),
    ],
)
def test_invalid_grants_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(GrantError, match=field):
        parse_grant({"principal": CI_BUILD, "roles": [ROLE], **raw}, resolve_policy=lambda name: None)


def test_stored_grant_must_live_under_its_principals_account() -> None:
    with pytest.raises(GrantError, match="account_id"):
        parse_grant({"principal": CI_BUILD, "account_id": "999999999999", "roles": [ROLE]})


@pytest.mark.parametrize(
    ("principal", "caller", "expected"),
    [
        ("arn:aws:iam::111111111111:role/ci-*", "arn:aws:iam::111111111111:role/ci-build", True),
        ("arn:aws:iam::111111111111:role/*-build", "arn:aws:iam::111111111111:role/ci-build", True),
        ("arn:aws:iam::111111111111:role/c*i*d", "arn:aws:iam::111111111111:role/ci-build", True),
        ("arn:aws:iam::111111111111:role/c*d*d", "arn:aws:iam::111111111111:role/ci-build", False),
        ("arn:aws:iam::111111111111:role/ci-**", "arn:aws:iam::111111111111:role/ci-", True),
        ("arn:aws:iam::111111111111:role/ab*ba", "arn:aws:iam::111111111111:role/aba", False),
        ("arn:aws:iam::111111111111:role/*", "arn:aws:iam::222222222222:role/ci", False),
        ("arn:aws:iam::111111111111:role/*", "arn:aws:iam::111111111111:user/ci", False),
        # IAM names are unique regardless of case: a grant written in another case still decides.
        ("arn:aws:iam::111111111111:role/CI-Admin", "arn:aws:iam::111111111111:role/ci-admin", True),
        ("arn:aws:iam::111111111111:role/CI-*", "arn:aws:iam::111111111111:role/ci-build", True),
    ],
)
def test_principal_matching(principal: str, caller: str, expected: bool) -> None:
    assert principal_matches(principal, caller) is expected


def test_a_pathological_pattern_is_answered_without_backtracking() -> None:
    pattern = "arn:aws:iam::111111111111:role/" + "*a" * 30 + "*b"
    assert principal_matches(pattern, "arn:aws:iam::111111111111:role/" + "a" * 64) is False
    assert principal_matches(pattern, "arn:aws:iam::111111111111:role/" + "a" * 29 + "b") is False
    assert principal_matches(pattern, "arn:aws:iam::111111111111:role/" + "a" * 63 + "b") is True


def test_a_disabled_grant_in_another_case_still_blocks_the_pattern() -> None:
    exact = stored("arn:aws:iam::111111111111:role/CI-Build", enabled=False)
    pattern = stored("arn:aws:iam::111111111111:role/ci-*")
    with pytest.raises(CallerNotAllowed, match="disabled"):
        decide([exact, pattern], CI_BUILD)


def test_grant_tag_keys_are_plain_ascii() -> None:
    with pytest.raises(GrantError, match="request_tags"):
        parse_grant(
            {"principal": CI_BUILD, "roles": [ROLE], "request_tags": ["b\u00fcild"]},
            resolve_policy=lambda n: None,
        )
    assert parse_grant(
        {"principal": CI_BUILD, "roles": [ROLE], "request_tags": ["team name"]}, resolve_policy=lambda n: None
    )


def test_two_exact_grants_differing_only_in_case_are_ambiguous_and_deny() -> None:
    # Both are enabled and would allow; which one DynamoDB returns first must not decide.
    lower = stored(CI_BUILD, roles=[ROLE])
    admin = {"role_arn": "arn:aws:iam::222222222222:role/admin"}
    upper = stored("arn:aws:iam::111111111111:role/CI-Build", roles=[admin])
    for order in ([lower, upper], [upper, lower]):
        assert deciding_grant(order, CI_BUILD) is None
        with pytest.raises(CallerNotAllowed, match="^no grant allows this caller$") as denied:
            decide(order, CI_BUILD)
        assert denied.value.detail is not None
        assert "ambiguous" in denied.value.detail and "role/CI-Build" in denied.value.detail
    # A pattern cannot break the tie either: exact grants are the candidates.
    assert deciding_grant([lower, upper, stored("arn:aws:iam::111111111111:role/ci-bui*")], CI_BUILD) is None


def test_case_collisions_finds_principals_differing_only_in_case() -> None:
    principals = [
        CI_BUILD,
        "arn:aws:iam::111111111111:role/deploy",
        "arn:aws:iam::111111111111:role/CI-BUILD",
        "arn:aws:iam::111111111111:role/ci-*",
        "arn:aws:iam::111111111111:role/CI-*",
        "arn:aws:iam::222222222222:role/ci-build",
    ]
    assert case_collisions(principals) == [
        [CI_BUILD, "arn:aws:iam::111111111111:role/CI-BUILD"],
        ["arn:aws:iam::111111111111:role/ci-*", "arn:aws:iam::111111111111:role/CI-*"],
    ]
    assert case_collisions([CI_BUILD, "arn:aws:iam::111111111111:role/deploy"]) == []


@pytest.mark.parametrize(
    ("more", "less"),
    [
        ("role/ci-*", "role/ci-**"),  # repeated stars add nothing
        ("role/ci-b*", "role/ci-***"),
        ("role/ab*", "role/*a*"),  # equal length, more literal characters
    ],
)
def test_specificity_counts_literal_characters_not_stars(more: str, less: str) -> None:
    prefix = "arn:aws:iam::111111111111:"
    assert specificity(prefix + more) >= specificity(prefix + less)
    caller = prefix + "role/ab-ci-build" if more == "role/ab*" else CI_BUILD
    a, b = stored(prefix + more), stored(prefix + less)
    if specificity(a.principal) > specificity(b.principal):
        assert decide([b, a], caller) is a and decide([a, b], caller) is a
    else:
        # `ci-**` does not outrank `ci-*`: equally specific, so ambiguous.
        with pytest.raises(CallerNotAllowed):
            decide([a, b], caller)


def test_a_doubled_star_never_outranks_the_single_star() -> None:
    single = stored("arn:aws:iam::111111111111:role/ci-*")
    doubled = stored("arn:aws:iam::111111111111:role/ci-**")
    narrower = stored("arn:aws:iam::111111111111:role/ci-b*")
    assert deciding_grant([single, doubled], CI_BUILD) is None
    assert decide([single, doubled, narrower], CI_BUILD) is narrower


def test_a_broken_deciding_grant_denies_like_no_grant_and_tells_only_the_audit() -> None:
    broken = BrokenGrant(CI_BUILD, "grant 'x': roles[0].role_arn is not an IAM role ARN: 'nope'")
    with pytest.raises(CallerNotAllowed) as nothing:
        decide([], CI_BUILD)
    with pytest.raises(CallerNotAllowed) as denied:
        decide([broken], CI_BUILD)
    assert denied.value.message == nothing.value.message
    assert nothing.value.detail is None
    assert denied.value.detail is not None and "roles[0].role_arn" in denied.value.detail


FULL_WIDTH_ACCOUNT = "\uff11" * 12  # FULLWIDTH DIGIT ONE: a digit to \\d, not to IAM


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"principal": f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:role/ci"}, "principal"),
        ({"principal": "arn:aws:iam::111111111111:role/c\u0131"}, "principal"),  # dotless i
        ({"roles": [{"role_arn": f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:role/x"}]}, "role_arn"),
        ({"roles": [{**ROLE, "external_id": "ext-\u0663\u0664"}]}, "external_id"),  # Arabic-Indic digits
        ({"roles": [{**ROLE, "external_id": "\u00e9quipe"}]}, "external_id"),
        ({"roles": [{**ROLE, "policy_arns": [f"arn:aws:iam::{FULL_WIDTH_ACCOUNT}:policy/x"]}]}, "policy"),
        ({"roles": [{**ROLE, "session_policy": "p\u00f8licy"}]}, "session_policy"),
        ({"not_after": "\uff12\uff10\uff12\uff17-06-30T00:00:00Z"}, "not_after"),
        ({"not_after": "2027-06-30T00:00:00Z\n"}, "not_after"),
        ({"principal_id": "AROA\uff21AAAAAAAAAAAAAAAA"}, "principal_id"),
        ({"source_cidrs": ["\uff11\uff10.0.0.0/8"]}, "source_cidrs"),
        ({"request_tags": ["K\u212aey"]}, "request_tags"),  # KELVIN SIGN
    ],
)
def test_identifiers_are_ascii_only(raw: dict[str, Any], field: str) -> None:
    grant = {"principal": CI_BUILD, "roles": [ROLE], **raw}
    with pytest.raises(GrantError, match=field):
        parse_grant(grant, resolve_policy=lambda n: None)


def test_ascii_identifiers_still_parse() -> None:
    grant = parse_grant(
        {
            "principal": "arn:aws:iam::111111111111:role/a+=,.@_-z",
            "not_after": "2027-06-30T00:00:00Z",
            "roles": [{**ROLE, "external_id": "Az09_+=,.@:/-"}],
        },
        resolve_policy=lambda n: None,
    )
    assert grant.roles[0].external_id == "Az09_+=,.@:/-"


def test_a_lookalike_tag_key_is_not_the_granted_key() -> None:
    grant = stored(CI_BUILD, request_tags=["key"])
    assert grant.allowed_tag_key("KEY") == "key"
    assert grant.allowed_tag_key("\u212aey") is None  # KELVIN SIGN lower-cases to "k"


def test_source_decisions_are_per_address_and_per_grant_networks() -> None:
    # The decision is cached (chalicelib.grants._source_allowed); each address and each grant's
    # networks still decide on their own, in any order, and a bad address is never remembered.
    narrow = stored(CI_BUILD, source_cidrs=["10.0.0.0/24"])
    wide = stored(CI_BUILD, source_cidrs=["10.0.0.0/8", "2001:db8::/32"])
    for _ in range(2):
        assert decide([narrow], CI_BUILD, ip="10.0.0.7") is narrow
        with pytest.raises(SourceNotAllowed, match="not allowed"):
            decide([narrow], CI_BUILD, ip="10.9.0.7")
        assert decide([wide], CI_BUILD, ip="10.9.0.7") is wide
        assert decide([wide], CI_BUILD, ip="2001:db8::1") is wide
        with pytest.raises(SourceNotAllowed, match="not allowed"):
            decide([narrow], CI_BUILD, ip="2001:db8::1")
        with pytest.raises(SourceNotAllowed, match="unknown"):
            decide([wide], CI_BUILD, ip="10.0.0.999")
