"""`stsvend revoke`'s policy: every document it can write passes the IAM grammar check and
parliament; merging is idempotent, prunes what can no longer deny anything, refuses what it did not
write, and the command refuses a policy that would not fit IAM's inline size limit."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from stsvend.errors import CommandError
from stsvend.ops.common import LONGEST_SESSION_SECONDS
from stsvend.ops.revoke import (
    ALL,
    CALLER,
    MAX_INLINE_CHARS,
    PRUNE_AFTER,
    REQUEST,
    TAG_CALLER,
    TAG_REQUEST_ID,
    Entry,
    document,
    entries_of,
    grants_change,
    merge,
    packed_size,
    prune_after,
    shown,
)
from tests.unit.test_iam_documents import ROOT, above_low, analyze, grammar_errors

NOW = datetime(2026, 12, 1, 20, 15, 30, 250_000, tzinfo=timezone.utc)
REVOKED_AT = datetime(2026, 12, 1, 20, 15, 31, tzinfo=timezone.utc)  # the next whole second
JENKINS = "arn:aws:iam::111111111111:user/jenkins"
REQUEST_ID = "c0ffee00-1234-4bcd-9876-0123456789ab"


def _every_kind() -> dict[str, Any]:
    entries = {
        Entry(REQUEST, REQUEST_ID, REVOKED_AT),
        Entry(REQUEST, "0badf00d-1234-4bcd-9876-0123456789ab", REVOKED_AT),
        Entry(CALLER, JENKINS, REVOKED_AT - timedelta(minutes=5)),
        Entry(ALL, "", REVOKED_AT - timedelta(minutes=10)),
    }
    policy = document(entries)
    assert policy is not None
    return policy


def test_the_documents_pass_the_iam_grammar_check() -> None:
    assert grammar_errors(_every_kind(), "identity") == []


def test_parliament_finds_nothing_above_low_in_them() -> None:
    findings = [(f.issue, f.severity) for f in analyze(_every_kind())]
    assert [f for f in findings if above_low(f[1])] == []


def test_each_statement_denies_everything_to_the_tagged_sessions_issued_before_the_revocation() -> None:
    statements = {s["Sid"]: s for s in _every_kind()["Statement"]}
    request = statements["StsvendRevokeRequest20261201T201531Z"]
    assert (request["Effect"], request["Action"], request["Resource"]) == ("Deny", "*", "*")
    assert request["Condition"] == {
        "DateLessThan": {"aws:TokenIssueTime": "2026-12-01T20:15:31Z"},
        "StringEquals": {TAG_REQUEST_ID: ["0badf00d-1234-4bcd-9876-0123456789ab", REQUEST_ID]},
    }
    caller = statements["StsvendRevokeCaller20261201T201031Z"]["Condition"]
    assert caller["StringEqualsIgnoreCase"] == {TAG_CALLER: [JENKINS]}
    # Every session stsvend vended: those carry the request id tag (and so last at most an hour).
    everything = statements["StsvendRevokeAllStsvendSessions20261201T200531Z"]["Condition"]
    assert everything == {
        "DateLessThan": {"aws:TokenIssueTime": "2026-12-01T20:05:31Z"},
        "Null": {TAG_REQUEST_ID: "false"},
    }


def test_a_document_reads_back_as_the_entries_it_was_written_from() -> None:
    policy = _every_kind()
    assert document(entries_of(json.loads(json.dumps(policy)))) == policy


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["Statement"].append({"Sid": "Mine", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}),
        lambda p: p["Statement"][0].update(Effect="Allow"),
        lambda p: p["Statement"][0]["Condition"]["DateLessThan"].update(
            {"aws:TokenIssueTime": "2030-01-01T00:00:00Z"}
        ),
        lambda p: p["Statement"][0].update(Action="s3:GetObject"),
        lambda p: p["Statement"][-1]["Condition"].update(Null={TAG_REQUEST_ID: "true"}),
    ],
    ids=["foreign statement", "allow", "time differs from sid", "narrowed action", "null flipped"],
)
def test_a_policy_changed_by_hand_is_refused_not_overwritten(change: Any) -> None:
    policy = _every_kind()
    change(policy)
    with pytest.raises(CommandError, match="^PolicyNotOurs: "):
        entries_of(policy)


def test_revoking_one_request_twice_changes_nothing() -> None:
    first = merge(set(), REQUEST, REQUEST_ID, NOW)
    assert first.added == [Entry(REQUEST, REQUEST_ID, REVOKED_AT)] and first.changed
    again = merge(first.entries, REQUEST, REQUEST_ID, NOW + timedelta(minutes=20))
    assert not again.changed and again.entries == first.entries and again.kept == first.added


def test_revoking_a_caller_again_moves_its_time_to_now() -> None:
    first = merge(set(), CALLER, JENKINS, NOW)
    later = NOW + timedelta(minutes=20)
    again = merge(first.entries, CALLER, JENKINS.upper().replace("ARN:AWS:IAM", "arn:aws:iam"), later)
    assert again.changed and again.replaced == first.added
    assert [e.revoked_at for e in again.entries] == [datetime(2026, 12, 1, 20, 35, 31, tzinfo=timezone.utc)]
    # The same command in the same second is a no-op.
    assert not merge(first.entries, CALLER, JENKINS, NOW).changed


def test_entries_older_than_the_longest_session_and_its_margin_are_pruned() -> None:
    assert PRUNE_AFTER > timedelta(seconds=LONGEST_SESSION_SECONDS)
    old = Entry(
        REQUEST, "0badf00d-1234-4bcd-9876-0123456789ab", REVOKED_AT - PRUNE_AFTER - timedelta(seconds=2)
    )
    young = Entry(CALLER, JENKINS, REVOKED_AT - PRUNE_AFTER + timedelta(seconds=2))
    result = merge({old, young}, REQUEST, REQUEST_ID, NOW)
    assert result.pruned == [old]
    assert result.entries == {young, Entry(REQUEST, REQUEST_ID, REVOKED_AT)}


def test_revoking_every_session_covers_the_earlier_entries() -> None:
    earlier = merge(merge(set(), REQUEST, REQUEST_ID, NOW).entries, CALLER, JENKINS, NOW).entries
    result = merge(earlier, ALL, "", NOW + timedelta(seconds=5))
    assert sorted(e.kind for e in result.entries) == [ALL]
    assert sorted(result.pruned) == sorted(earlier)


def test_the_policy_stays_small_over_a_day_of_revocations() -> None:
    """A request revoked every five minutes for 24 hours on a role whose sessions last at most an
    hour: pruning keeps only the last hour's (and its margin's) entries, well within IAM's inline
    policy limit."""
    entries: set[Entry] = set()
    largest = 0
    keep_for = prune_after(3600)
    for step in range(24 * 12):
        request = f"{step:08x}-1234-4bcd-9876-0123456789ab"
        entries = merge(entries, REQUEST, request, NOW + timedelta(minutes=5 * step), keep_for).entries
        policy = document(entries)
        assert policy is not None
        largest = max(largest, packed_size(policy))
    assert len(entries) == keep_for.total_seconds() // 300 + 1
    assert largest < MAX_INLINE_CHARS / 2


def test_entries_are_kept_as_long_as_the_roles_longest_session() -> None:
    """A role granted in web-identity mode holds 12-hour sessions: a revocation must outlive them."""
    assert prune_after(43200) == timedelta(seconds=43200 + 300) == PRUNE_AFTER
    assert prune_after(7200) == timedelta(seconds=7500)
    assert prune_after(0) == prune_after(3600)  # never below the hour a chained session may last
    entry = Entry(REQUEST, REQUEST_ID, REVOKED_AT)
    later = NOW + timedelta(hours=11)
    assert entry in merge({entry}, CALLER, JENKINS, later, prune_after(43200)).entries
    assert entry not in merge({entry}, CALLER, JENKINS, later, prune_after(3600)).entries


def test_grants_change_names_the_exact_grant_or_the_pattern_that_admits_the_caller(tmp_path: Any) -> None:
    grants = tmp_path / "policies" / "grants"
    grants.mkdir(parents=True)
    role = {"role_arn": "arn:aws:iam::222222222222:role/deployer", "max_duration_seconds": 3600}
    (grants / "prod.json").write_text(json.dumps([{"principal": JENKINS, "roles": [role]}]))
    (grants / "dev.json").write_text(
        json.dumps([{"principal": "arn:aws:iam::111111111111:user/jen*", "roles": [role]}])
    )
    (grants / "other.json").write_text(
        json.dumps([{"principal": "arn:aws:iam::111111111111:user/bob", "roles": [role]}])
    )
    text = "\n".join(grants_change(tmp_path, JENKINS))
    assert f'policies/grants/prod.json: the grant for {JENKINS}: set "enabled": false' in text
    assert "stsvend grants plan --stage prod && stsvend grants apply --stage prod" in text
    assert (
        "policies/grants/dev.json: arn:aws:iam::111111111111:user/jen* admits it; add an exact grant" in text
    )
    assert '"enabled": false' in text.split("dev.json")[1] and "other.json" not in text
    # The local grants of this repository: sample-app has an exact grant.
    assert "local.json: the grant for arn:aws:iam::111111111111:user/sample-app" in "\n".join(
        grants_change(ROOT, "arn:aws:iam::111111111111:user/sample-app")
    )


def test_without_a_checkout_the_change_is_described() -> None:
    text = "\n".join(grants_change(None, JENKINS))
    assert '"enabled": false' in text and JENKINS in text


@pytest.mark.parametrize(
    "statement",
    [
        {"Sid": "StsvendRevokeCaller20261201T201531Z", "Condition": "not an object"},
        {"Sid": "StsvendRevokeCaller20261201T201531Z", "Condition": {"StringEqualsIgnoreCase": ["x"]}},
        {"Sid": "StsvendRevokeRequest20261201T201531Z", "Condition": {"StringEquals": 7}},
        {"Sid": "StsvendRevokeRequest20261399T996199Z", "Effect": "Deny"},
        {"Sid": "StsvendRevokeAllStsvendSessions00000000T000000Z"},
        {"Sid": {"not": "text"}},
    ],
    ids=["condition text", "operator list", "operator number", "no such date", "year zero", "sid object"],
)
def test_a_policy_shaped_otherwise_than_stsvend_writes_is_refused_by_name(statement: dict[str, Any]) -> None:
    """Whatever a policy of ours holds, the run says which and leaves it, never an internal error."""
    with pytest.raises(CommandError, match="^PolicyNotOurs: "):
        entries_of({"Version": "2012-10-17", "Statement": [statement]})


def test_an_entry_value_that_is_not_a_request_id_or_caller_is_refused() -> None:
    policy = document({Entry(REQUEST, REQUEST_ID, REVOKED_AT)})
    assert policy is not None
    policy["Statement"][0]["Condition"]["StringEquals"][TAG_REQUEST_ID] = ["x' OR '1'='1"]
    with pytest.raises(CommandError, match="^PolicyNotOurs: "):
        entries_of(policy)


def test_the_policy_is_shown_as_the_json_that_is_written() -> None:
    policy = _every_kind()
    text = shown(policy)
    assert json.loads(text) == policy and text.count("\n") == len(policy["Statement"]) + 4


def test_a_caller_with_a_comma_is_revoked_by_its_escaped_tag_value() -> None:
    from stsvend.ops.common import caller_tag_value

    value = caller_tag_value("arn:aws:iam::111111111111:role/ci,build")
    assert value == "arn:aws:iam::111111111111:role/ci=2Cbuild"
    policy = document(merge(set(), CALLER, value, NOW).entries)
    assert policy is not None and grammar_errors(policy, "identity") == []
    assert policy["Statement"][0]["Condition"]["StringEqualsIgnoreCase"] == {TAG_CALLER: [value]}
    assert entries_of(policy) == {Entry(CALLER, value, REVOKED_AT)}


def test_a_revocation_is_named_by_what_it_holds() -> None:
    """Two runs writing one name write the same document: the name is the kind, the time and the
    value as IAM compares it (a request id exactly, a caller ignoring case)."""
    from stsvend.ops.revoke import is_ours, policy_name

    request = Entry(REQUEST, REQUEST_ID, REVOKED_AT)
    caller = Entry(CALLER, JENKINS, REVOKED_AT)
    assert policy_name(request) == policy_name(Entry(REQUEST, REQUEST_ID, REVOKED_AT))
    assert policy_name(request) != policy_name(Entry(REQUEST, REQUEST_ID.upper(), REVOKED_AT))
    assert policy_name(caller) == policy_name(Entry(CALLER, JENKINS.upper(), REVOKED_AT))
    assert policy_name(caller) != policy_name(Entry(CALLER, JENKINS, REVOKED_AT + timedelta(seconds=1)))
    names = {policy_name(e) for e in (request, caller, Entry(ALL, "", REVOKED_AT))}
    assert len(names) == 3 and all(is_ours(n) and len(n) <= 128 for n in names)
    assert not is_ours("stsvend-revoked-sessions-mine") and is_ours("stsvend-revoked-sessions")


def test_a_revocation_is_in_force_when_it_or_a_later_one_covering_it_is() -> None:
    from stsvend.ops.revoke import covered

    wanted = Entry(CALLER, JENKINS, REVOKED_AT)
    later = REVOKED_AT + timedelta(seconds=1)
    assert covered({wanted}, wanted)
    assert covered({Entry(CALLER, JENKINS.upper(), later)}, wanted)
    assert covered({Entry(ALL, "", REVOKED_AT)}, wanted)
    assert not covered({Entry(ALL, "", REVOKED_AT - timedelta(seconds=1))}, wanted)
    assert not covered({Entry(CALLER, JENKINS, REVOKED_AT - timedelta(seconds=1))}, wanted)
    assert not covered({Entry(REQUEST, JENKINS, later)}, wanted)
    request = Entry(REQUEST, REQUEST_ID, REVOKED_AT)
    assert not covered({Entry(REQUEST, REQUEST_ID.upper(), later)}, request)


def test_grants_change_reads_each_file_as_grants_do_and_names_the_grant_that_decides(tmp_path: Any) -> None:
    """The grants files are read as `stsvend grants` reads them (strict JSON, every grant checked),
    and the grant named is the one the service's matching lets decide for the caller."""
    grants = tmp_path / "policies" / "grants"
    grants.mkdir(parents=True)
    roles = [{"role_arn": "arn:aws:iam::222222222222:role/deployer"}]
    account = "arn:aws:iam::111111111111"

    def write(name: str, entries: Any) -> None:
        (grants / name).write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")

    # The more specific pattern decides, not the first one that matches.
    write("prod.json", [{"principal": f"{account}:user/j*", "roles": roles},
                        {"principal": f"{account}:user/jen*", "roles": roles, "description": "ci"}])
    # A repeated key: json.loads would let the last "principal" name the caller.
    (grants / "dev.json").write_text(
        f'[{{"principal": "{account}:user/bob", "principal": "{JENKINS}", "roles": {json.dumps(roles)}}}]'
    )
    write("qa.json", [{"principal": f"{account}:user/jen\u212ains", "roles": roles}])  # KELVIN SIGN
    write("test.json", [{"principal": "arn:aws:iam::*:user/jenkins", "roles": roles}])  # no grant's form
    write("ops.json", [{"principal": f"{account}:user/jen*", "roles": roles},
                       {"principal": f"{account}:user/*ins", "roles": roles}])  # equally specific
    write("old.json", [{"principal": JENKINS, "roles": roles, "not_after": "2020-01-01T00:00:00Z"}])
    write("off.json", [{"principal": f"{account}:user/*", "roles": roles, "enabled": False}])
    text = "\n".join(grants_change(tmp_path, JENKINS))
    assert f"prod.json: {account}:user/jen* admits it; add an exact grant" in text
    assert f"{account}:user/j*," not in text and '"description": "ci"' in text.split("prod.json")[1]
    assert "dev.json: cannot be read" in text and "repeats the key 'principal'" in text
    assert "qa.json: cannot be read" in text and "must be ASCII" in text
    assert "test.json: cannot be read" in text
    assert f"ops.json: {account}:user/*ins, {account}:user/jen* match it equally" in text or (
        f"ops.json: {account}:user/jen*, {account}:user/*ins match it equally" in text
    )
    assert f"old.json: the grant for {JENKINS}: already expired" in text
    assert f"off.json: {account}:user/* decides for it and is already disabled" in text


@pytest.mark.parametrize(
    ("principal", "decides"),
    [
        ("arn:aws:iam::111111111111:user/JENKINS", True),  # IAM names ignore case, and so do grants
        ("arn:aws:iam::111111111111:user/jen*s", True),
        ("arn:aws:iam::111111111111:user/jenkins-old", False),  # a prefix of the name is not the name
        ("arn:aws:iam::111111111111:user/jenk", False),
        ("arn:aws:iam::111111111111:user/jenkins*x", False),
        ("arn:aws:iam::222222222222:user/jenkins", False),  # another account
        ("arn:aws:iam::111111111111:role/jenkins", False),  # a role is not the user
        ("arn:aws:iam::111111111111:user/*", True),
        ("arn:aws:iam::111111111111:user/x*", False),
        # Not a grant's form at all: the file is refused, as `stsvend grants` refuses it.
        ("arn:aws:iam::111111111111:user/*/jenkins", None),
        ("arn:aws:iam::111111111111:user/j?nkins", None),
        ("arn:aws:iam::111111111111:user/[j]enkins", None),
    ],
)
def test_grants_change_matches_callers_exactly_as_the_service_does(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, principal: str, decides: bool | None
) -> None:
    """`revoke --caller` names the grant the service's own matcher (chalicelib, through
    stsvend.checkout.model) lets decide for the caller, and no grant a looser match would find."""
    from stsvend.checkout import model

    grants = tmp_path / "policies" / "grants"
    grants.mkdir(parents=True)
    roles = [{"role_arn": "arn:aws:iam::222222222222:role/deployer"}]
    (grants / "prod.json").write_text(json.dumps([{"principal": principal, "roles": roles}]))
    asked: list[str] = []
    server = model.deciding_candidates

    def spy(grant_list: Any, caller: str) -> Any:
        asked.append(caller)
        return server(grant_list, caller)

    monkeypatch.setattr(model, "deciding_candidates", spy)
    text = "\n".join(grants_change(tmp_path, JENKINS))
    if decides is None:
        assert asked == [] and "prod.json: cannot be read" in text
        return
    assert asked == [JENKINS]
    assert ("prod.json" in text) is decides, text
    if not decides:
        assert "no grant in policies/grants/ admits" in text
