"""Request validation per bad-input class, and the names and tags STS receives, at their limits."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chalicelib.errors import (
    DurationNotAllowed,
    InvalidRequest,
    PayloadTooLarge,
    RoleNotGranted,
    TagNotAllowed,
)
from chalicelib.grants import parse_grant
from chalicelib.identity import Caller, build_caller
from chalicelib.vending import (
    CredentialRequest,
    parse_request,
    plan_assume_role,
    role_session_name,
    service_tag_value,
    source_identity,
)

ROLE = "arn:aws:iam::222222222222:role/deployer"
VALID_NAME = r"^[A-Za-z0-9+=,.@_-]{2,64}$"


def caller(arn: str = "arn:aws:sts::111111111111:assumed-role/jenkins/i-0abc") -> Caller:
    return build_caller(arn, "AROAX:s", "111111111111", "10.0.0.1", "ua")


def parse(body: Any) -> CredentialRequest:
    return parse_request(json.dumps(body) if not isinstance(body, (str, bytes)) else body, "aws")


def test_a_full_request_parses() -> None:
    request = parse(
        {"role_arn": ROLE, "duration_seconds": 900, "tags": {"build-id": "1"}, "session_name": "d-1"}
    )
    assert request == CredentialRequest(ROLE, 900, {"build-id": "1"}, "d-1")
    assert parse({"role_arn": "arn:aws:iam::222222222222:role/team/app/deployer"}).duration_seconds is None


@pytest.mark.parametrize(
    "body",
    [
        "",
        "null",
        "[]",
        '"role"',
        "{bad json}",
        f'{{"role_arn": "{ROLE}", "role_arn": "{ROLE}"}}',
        b"\xff\xfe",
        "[" * 8000 + "]" * 8000,
        {},
        {"role_arn": None},
        {"role_arn": 7},
        {"role_arn": ROLE, "extra": 1},
        {"role_arn": "arn:aws:iam::222222222222:role/*"},
        {"role_arn": "arn:aws:iam::222222222222:role/"},
        {"role_arn": "arn:aws:iam::22222222222:role/deployer"},
        {"role_arn": "arn:aws:iam::222222222222:user/deployer"},
        {"role_arn": "arn:aws-cn:iam::222222222222:role/deployer"},
        {"role_arn": ROLE + "\n"},
        {"role_arn": ROLE, "duration_seconds": "900"},
        {"role_arn": ROLE, "duration_seconds": 900.5},
        {"role_arn": ROLE, "duration_seconds": float("nan")},
        {"role_arn": ROLE, "duration_seconds": float("inf")},
        {"role_arn": ROLE, "duration_seconds": True},
        {"role_arn": ROLE, "tags": ["build-id"]},
        {"role_arn": ROLE, "tags": {"k": 1}},
        {"role_arn": ROLE, "tags": {"": "v"}},
        {"role_arn": ROLE, "tags": {"k" * 129: "v"}},
        {"role_arn": ROLE, "tags": {"k": "v" * 257}},
        {"role_arn": ROLE, "tags": {"bad*key": "v"}},
        {"role_arn": ROLE, "tags": {"k": "new\nline"}},
        {"role_arn": ROLE, "tags": {"aws:createdBy": "me"}},
        {"role_arn": ROLE, "tags": {"Build": "1", "build": "2"}},
        {"role_arn": ROLE, "tags": {f"k{i}": "v" for i in range(48)}},
        {"role_arn": ROLE, "session_name": "x"},
        {"role_arn": ROLE, "session_name": "x" * 65},
        {"role_arn": ROLE, "session_name": "spaces are bad"},
        {"role_arn": ROLE, "session_name": "ünïcode"},
        {"role_arn": ROLE, "session_name": 12},
    ],
)
def test_bad_requests_are_invalid(body: Any) -> None:
    # Twice: a refused body is never remembered, so a repeat is checked again in full.
    for _ in range(2):
        with pytest.raises(InvalidRequest):
            parse(body)


def test_a_repeated_body_is_one_remembered_request_that_no_one_can_change() -> None:
    body = json.dumps({"role_arn": ROLE, "tags": {"build-id": "41"}, "session_name": "memo-1"}).encode()
    first = parse_request(body, "aws")
    again = parse_request(bytes(bytearray(body)), "aws")  # the same bytes, another object
    assert again is first
    assert again == CredentialRequest(ROLE, None, {"build-id": "41"}, "memo-1")
    with pytest.raises(TypeError):
        first.tags["build-id"] = "42"  # type: ignore[index]
    with pytest.raises(TypeError):
        del first.tags["build-id"]  # type: ignore[attr-defined]
    assert parse_request(body, "aws").tags == {"build-id": "41"}
    # Another body, however close, is its own request.
    other = parse_request(body.replace(b"41", b"42"), "aws")
    assert other.tags == {"build-id": "42"} and first.tags == {"build-id": "41"}


def test_the_partition_is_part_of_what_is_remembered() -> None:
    body = json.dumps({"role_arn": "arn:aws-cn:iam::222222222222:role/memo"}).encode()
    assert parse_request(body, "aws-cn").role_arn == "arn:aws-cn:iam::222222222222:role/memo"
    with pytest.raises(InvalidRequest, match="partition aws$"):
        parse_request(body, "aws")
    assert parse_request(body, "aws-cn").role_arn.startswith("arn:aws-cn:")


def test_remembered_requests_equal_a_full_parse_and_large_bodies_are_not_kept() -> None:
    from chalicelib import vending

    bodies = [
        {"role_arn": ROLE},
        {"role_arn": ROLE, "duration_seconds": 900.0},
        {"role_arn": ROLE, "tags": {"Team": "é ü", "k:/=+-@": ""}},
        {"role_arn": ROLE, "tags": {f"k{i}": "v" * 256 for i in range(47)}},  # ~13 KB
    ]
    for body in bodies:
        raw = json.dumps(body).encode()
        assert parse_request(raw, "aws") == vending._parse(raw, "aws")
    large = json.dumps(bodies[-1]).encode()
    assert vending.MEMO_BODY_BYTES < len(large) <= vending.MAX_BODY_BYTES
    kept = vending._parse_remembered.cache_info().currsize
    first, again = parse_request(large, "aws"), parse_request(large, "aws")
    assert first == again and first is not again
    assert vending._parse_remembered.cache_info().currsize == kept
    assert vending._parse_remembered.cache_info().maxsize == 128


def test_a_refused_body_is_checked_again_in_full_each_time() -> None:
    from chalicelib import vending

    body = json.dumps({"role_arn": ROLE, "tags": {"aws:x": "v"}}).encode()
    errors = []
    for _ in range(3):
        before = vending._parse_remembered.cache_info()
        with pytest.raises(InvalidRequest, match="reserved by AWS") as caught:
            parse_request(body, "aws")
        after = vending._parse_remembered.cache_info()
        # A miss each time (the body was looked up and parsed again), and nothing kept.
        assert (after.misses, after.hits, after.currsize) == (before.misses + 1, before.hits, before.currsize)
        errors.append(caught.value)
    assert len({id(error) for error in errors}) == 3


@pytest.mark.parametrize("order", ["good first", "bad first"])
def test_bodies_differing_anywhere_are_decided_apart(order: str) -> None:
    # Pairs the same up to their last bytes, or but for whitespace inside a string: a memo keyed on
    # less than the whole body would hand one the other's answer.
    pad = {f"pad{i:02d}": "p" * 240 for i in range(15)}
    pairs = [
        (
            json.dumps({"role_arn": ROLE, "tags": {**pad, "build-id": "1"}}).encode(),
            json.dumps({"role_arn": ROLE, "tags": {**pad, "aws:x": "1"}}).encode(),
        ),
        (
            json.dumps({"role_arn": ROLE, "tags": {**pad, "k": "v"}}).encode(),
            json.dumps({"role_arn": ROLE, "tags": {**pad, "k": "v\n"}}).encode(),
        ),
    ]
    for good, bad in pairs:
        assert 3800 < len(good) <= 4096 and 3800 < len(bad) <= 4096
        for body in ([good, bad] if order == "good first" else [bad, good]) * 2:
            if body is good:
                assert parse_request(body, "aws") == vending_parse(good)
            else:
                with pytest.raises(InvalidRequest):
                    parse_request(body, "aws")
    spaced = json.dumps({"role_arn": ROLE, "tags": {"team": "a b"}}).encode()
    tight = json.dumps({"role_arn": ROLE, "tags": {"team": "ab"}}).encode()
    for body, team in [(spaced, "a b"), (tight, "ab")] * 2:
        assert parse_request(body, "aws").tags == {"team": team}


def vending_parse(raw: bytes) -> CredentialRequest:
    from chalicelib import vending

    return vending._parse(raw, "aws")


def test_tag_keys_are_checked_on_every_request_that_sends_them() -> None:
    # Key checks are remembered per key: a refused key must be refused again, a good key still
    # checked against its value and its reserved prefix each time.
    for _ in range(2):
        with pytest.raises(InvalidRequest, match="tag key"):
            parse({"role_arn": ROLE, "tags": {"bad*key": "v"}})
        with pytest.raises(InvalidRequest, match="reserved by AWS"):
            parse({"role_arn": ROLE, "tags": {"AWS:x": "v"}})
        with pytest.raises(InvalidRequest, match="value"):
            parse({"role_arn": ROLE, "tags": {"build-id": "new\nline"}})
        assert parse({"role_arn": ROLE, "tags": {"build-id": "7"}}).tags == {"build-id": "7"}


def test_an_integral_float_duration_is_that_whole_number() -> None:
    assert parse({"role_arn": ROLE, "duration_seconds": 900.0}).duration_seconds == 900
    assert parse('{"role_arn": "%s", "duration_seconds": 1e3}' % ROLE).duration_seconds == 1000


def test_body_over_16_kib_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        parse(json.dumps({"role_arn": ROLE, "pad": "x" * 16384}))


def test_tags_at_sts_limits_are_accepted() -> None:
    tags = {f"k{i}": "v" for i in range(45)}
    tags["K" * 128] = "é" * 256
    tags["with space:/=+-@_."] = "Zürich 東京 ١٢٣"
    request = parse({"role_arn": ROLE, "tags": tags})
    assert len(request.tags) == 47


def grant(**fields: Any) -> Any:
    return parse_grant(
        {
            "principal": "arn:aws:iam::111111111111:role/jenkins",
            "account_id": "111111111111",
            "request_tags": ["build-id"],
            "roles": [{"role_arn": ROLE, "max_duration_seconds": 1800}],
            **fields,
        }
    )


def test_plan_rejects_roles_durations_and_tags_outside_the_grant() -> None:
    with pytest.raises(RoleNotGranted):
        plan_assume_role(caller(), CredentialRequest("arn:aws:iam::222222222222:role/admin"), grant(), "r")
    with pytest.raises(DurationNotAllowed):
        plan_assume_role(caller(), CredentialRequest(ROLE, 1801), grant(), "r")
    with pytest.raises(DurationNotAllowed):
        plan_assume_role(caller(), CredentialRequest(ROLE, 899), grant(), "r")
    with pytest.raises(TagNotAllowed):
        plan_assume_role(caller(), CredentialRequest(ROLE, None, {"team": "x"}), grant(), "r")
    for key in ("stsvend:caller", "StsVend:Caller-Account", "STSVEND:x"):
        with pytest.raises(TagNotAllowed, match="collides"):
            plan_assume_role(caller(), CredentialRequest(ROLE, None, {key: "x"}), grant(), "r")


def test_session_name_uses_request_then_caller_session_then_request_id() -> None:
    request_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert (
        role_session_name(caller(), CredentialRequest(ROLE, session_name="d-1"), request_id) == "jenkins-d-1"
    )
    assert role_session_name(caller(), CredentialRequest(ROLE), request_id) == "jenkins-i-0abc"
    user = caller("arn:aws:iam::111111111111:user/alice")
    assert role_session_name(user, CredentialRequest(ROLE), request_id) == "alice-0f1e2d3c4b5a"


def test_session_name_and_source_identity_stay_within_sts_limits() -> None:
    long_role = "r" * 64
    long_session = "s" * 64
    c = caller(f"arn:aws:sts::111111111111:assumed-role/{long_role}/{long_session}")
    name = role_session_name(c, CredentialRequest(ROLE, session_name="q" * 64), "rid")
    assert len(name) == 64
    assert name.endswith("-" + "q" * 32)
    assert source_identity(c) == long_role
    short = caller("arn:aws:iam::111111111111:user/a")
    assert source_identity(short) == "a_"
    import re

    for value in (name, source_identity(short), role_session_name(short, CredentialRequest(ROLE), "r")):
        assert re.match(VALID_NAME, value), value


def test_tags_sent_to_sts() -> None:
    plan = plan_assume_role(caller(), CredentialRequest(ROLE, None, {"BUILD-ID": "42"}), grant(), "req-1")
    assert plan.params["Tags"] == [
        {"Key": "stsvend:caller", "Value": "arn:aws:iam::111111111111:role/jenkins"},
        {"Key": "stsvend:caller-account", "Value": "111111111111"},
        {"Key": "stsvend:request-id", "Value": "req-1"},
        {"Key": "build-id", "Value": "42"},
    ]
    assert plan.params["TransitiveTagKeys"] == ["stsvend:caller", "stsvend:caller-account"]
    assert plan.params["DurationSeconds"] == 1800
    assert len(plan.params["Tags"]) <= 50


def test_stsvend_tags_cannot_be_reached_through_unicode_case_folding() -> None:
    with pytest.raises(TagNotAllowed, match="collides"):
        plan_assume_role(caller(), CredentialRequest(ROLE, None, {"\u017ftsvend:caller": "x"}), grant(), "r")


# What STS accepts (AssumeRole API reference): tag values [\p{L}\p{Z}\p{N}_.:/=+\-@]* up to 256;
# RoleSessionName and SourceIdentity [\w+=,.@-]{2,64} (ASCII word characters).
STS_TAG_VALUE = re.compile(r"[A-Za-z0-9 _.:/=+\-@]{0,256}")
STS_SESSION_TEXT = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sts::111111111111:assumed-role/ci,build/s,1",
        "arn:aws:sts::111111111111:assumed-role/a+b=c,d.e@f_g-h/sess=1,2",
        "arn:aws:iam::111111111111:user/path/with,comma/bob,the=builder",
        "arn:aws:sts::111111111111:assumed-role/" + ",=" * 32 + "/" + "," * 64,
        "arn:aws-us-gov:sts::111111111111:assumed-role/" + "," * 64 + "/x,",
    ],
)
def test_every_service_value_fits_sts_charsets_for_any_iam_name(arn: str) -> None:
    who = caller(arn)
    plan = plan_assume_role(who, CredentialRequest(ROLE), grant(principal=who.principal_arn), "req-1,=")
    for tag in plan.params["Tags"]:
        assert STS_TAG_VALUE.fullmatch(tag["Value"]), tag
    assert STS_SESSION_TEXT.fullmatch(plan.params["RoleSessionName"])
    assert STS_SESSION_TEXT.fullmatch(plan.params["SourceIdentity"])
    assert not plan.params["SourceIdentity"].startswith("aws:")


def test_service_tag_values_escape_commas_reversibly() -> None:
    assert service_tag_value("arn:aws:iam::1:role/ci,build") == "arn:aws:iam::1:role/ci=2Cbuild"
    assert service_tag_value("role/a=b") == "role/a=3Db"
    assert service_tag_value("a+b.c@d_e-f g:h/i") == "a+b.c@d_e-f g:h/i"  # already allowed: unchanged
    # Unambiguous: a name that looks like an escape is not mistaken for one.
    assert service_tag_value("x,") != service_tag_value("x=2C")
    assert service_tag_value("\u00e9") == "=C3=A9"
    names = [",", "=2C", "=", "=3D", "+", "=2B", ",,", "=,"]
    assert len({service_tag_value(n) for n in names}) == len(names)
    # Longest caller principal, all commas: still whole, within 256.
    longest = "arn:aws-us-gov:iam::111111111111:role/" + "," * 64
    assert len(service_tag_value(longest)) <= 256 and service_tag_value(longest).endswith("=2C" * 64)
    # Longer texts are cut before an escape, never inside one.
    cut = service_tag_value("a" * 254 + ",")
    assert cut == "a" * 254


def test_the_caller_tag_carries_the_escaped_principal() -> None:
    who = caller("arn:aws:sts::111111111111:assumed-role/ci,build/s1")
    plan = plan_assume_role(who, CredentialRequest(ROLE), grant(principal=who.principal_arn), "req-1")
    tags = {t["Key"]: t["Value"] for t in plan.params["Tags"]}
    assert tags["stsvend:caller"] == "arn:aws:iam::111111111111:role/ci=2Cbuild"
    assert plan.params["SourceIdentity"] == "ci,build"  # SourceIdentity allows `,`


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32"])
def test_json_bodies_in_every_encoding_json_reads(encoding: str) -> None:
    # ASCII bodies take a fast path past the encoding detection; the others must still be read.
    text = json.dumps({"role_arn": ROLE, "tags": {"team": "é"}}, ensure_ascii=False)
    assert parse_request(text.encode(encoding), "aws") == CredentialRequest(ROLE, None, {"team": "é"})
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_request(b'{"role_arn": "' + ROLE.encode() + b'"\x00}', "aws")
