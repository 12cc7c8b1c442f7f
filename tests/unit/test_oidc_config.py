"""OIDC issuers and grants as reviewed configuration: what does not parse, and why (deny by default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.grants import GrantError
from chalicelib.oidc.config import (
    GITHUB_ISSUER,
    KINDS,
    OidcGrant,
    config_from_items,
    parse_issuer,
    parse_oidc_grant,
)

ROLE = {"role_arn": "arn:aws:iam::111111111111:role/read-only"}


def _issuer(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": "github-actions",
        "issuer": GITHUB_ISSUER,
        "audiences": ["stsvend"],
        "required_claims": {"repository_owner_id": "9000001"},
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_github_issuer_with_its_organisation_pinned_parses() -> None:
    issuer = parse_issuer(_issuer(), "github")
    assert issuer.algorithms == ("RS256",)
    assert issuer.required_claims == {"repository_owner_id": ("9000001",)}
    assert issuer.jwks_uri is None  # from discovery


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"audiences": None}, "no default"),
        ({"audiences": []}, "no default"),
        ({"required_claims": None}, "shared by every github-actions tenant"),
        ({"required_claims": {"repository": "octo-org/octo-repo"}}, "must pin one of"),
        ({"algorithms": ["HS256"]}, "asymmetric"),
        ({"algorithms": ["none"]}, "asymmetric"),
        ({"algorithms": ["RS256", "HS512"]}, "asymmetric"),
        ({"issuer": GITHUB_ISSUER + "/"}, "not a github-actions issuer"),
        ({"issuer": "http://token.actions.githubusercontent.com"}, "not a github-actions issuer"),
        ({"issuer": "https://evil.example/token.actions.githubusercontent.com"}, "not a github-actions"),
        ({"kind": "jenkins"}, "kind must be one of"),
        ({"kind": "gitlab-ci"}, "its kind must say so"),
        ({"jwks_uri": "http://keys.example/jwks"}, "https"),
        ({"leeway_seconds": 3600}, "leeway_seconds"),
        ({"max_lifetime_seconds": 0}, "max_lifetime_seconds"),
        ({"audience": "x"}, "unknown field"),
    ],
)
def test_an_issuer_that_would_trust_too_much_does_not_parse(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(GrantError, match=words):
        parse_issuer(_issuer(**overrides), "github")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://token.actions.githubusercontent.com/octo-enterprise",  # per-enterprise issuer
        "https://github.example.com/_services/token",  # GitHub Enterprise Server
    ],
)
def test_github_enterprise_issuer_forms_parse_without_a_tenant_pin(issuer: str) -> None:
    assert parse_issuer(_issuer(issuer=issuer, required_claims=None), "ghes").issuer == issuer


@pytest.mark.parametrize(
    ("kind", "issuer", "pinned"),
    [
        ("gitlab-ci", "https://gitlab.example.com", None),
        ("gitlab-ci", "https://gitlab.com", {"namespace_id": "72"}),
        ("buildkite", "https://agent.buildkite.com", {"organization_id": "0a0b0c0d-1111-2222-3333-44445555"}),
        ("circleci", "https://oidc.circleci.com/org/6f7c1f3a-0000-4000-8000-000000000001", None),
    ],
)
def test_every_shipped_kind_parses(kind: str, issuer: str, pinned: dict[str, str] | None) -> None:
    parsed = parse_issuer(_issuer(kind=kind, issuer=issuer, required_claims=pinned), "ci")
    assert parsed.kind is KINDS[kind]


@pytest.mark.parametrize(
    ("kind", "issuer"), [("gitlab-ci", "https://gitlab.com"), ("buildkite", "https://agent.buildkite.com")]
)
def test_shared_issuers_need_their_tenant_pinned(kind: str, issuer: str) -> None:
    with pytest.raises(GrantError, match="shared by every"):
        parse_issuer(_issuer(kind=kind, issuer=issuer, required_claims=None), "ci")


def _grant(claims: dict[str, Any], **overrides: Any) -> OidcGrant:
    issuer = parse_issuer(_issuer(), "github")
    raw = {"issuer": "github", "claims": claims, "roles": [ROLE], **overrides}
    return parse_oidc_grant(raw, "g", {"github": issuer})


def test_a_grant_keyed_on_a_name_alone_does_not_parse_unless_it_opts_in() -> None:
    with pytest.raises(GrantError, match="immutable ids"):
        _grant({"repository": "octo-org/octo-repo"})
    grant = _grant({"repository": "octo-org/octo-repo"}, names_only=True)
    assert grant.names_only
    # A name beside an id is an extra condition.
    assert _grant({"repository_id": "1", "repository": "octo-org/octo-repo"}).claims["repository"] == (
        "octo-org/octo-repo",
    )


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"repository_id": "1", "sub": "repo:x"}, "does not define"),
        ({"repository_id": ""}, "printable ASCII"),
        ({"repository_id": "1\n"}, "printable ASCII"),
        ({"repository_id": 1}, "printable ASCII"),
        ({"repository_id": []}, "printable ASCII"),
    ],
)
def test_grant_conditions_are_the_kinds_claims_as_printable_text(claims: dict[str, Any], words: str) -> None:
    with pytest.raises(GrantError, match=words):
        _grant(claims)


def test_a_grant_for_an_unconfigured_issuer_does_not_parse() -> None:
    with pytest.raises(GrantError, match="not configured"):
        parse_oidc_grant({"issuer": "gitlab", "claims": {"project_id": "1"}, "roles": [ROLE]}, "g", {})


def test_matching_is_exact_and_numbers_and_booleans_compare_as_json_spells_them() -> None:
    grant = _grant({"repository_id": ["1", "2"], "ref_protected": "true"})
    assert grant.matches({"repository_id": "2", "ref_protected": True})
    assert grant.matches({"repository_id": 1, "ref_protected": "true"})
    assert not grant.matches({"repository_id": "3", "ref_protected": "true"})
    assert not grant.matches({"repository_id": "1"})
    assert not grant.matches({"repository_id": "1 ", "ref_protected": "true"})
    assert not grant.matches({"repository_id": ["1"], "ref_protected": "true"})


def test_stored_items_round_trip_and_a_broken_one_is_kept_as_broken() -> None:
    issuer = parse_issuer(_issuer(), "github")
    grant = _grant({"repository_id": "1"})
    broken = {"account_id": "oidc", "principal": "grant:bad", "issuer": "github", "claims": {}, "roles": []}
    config = config_from_items([issuer.to_item(), grant.to_item(), broken])
    assert config.issuers["github"] == issuer
    assert config.grants[0] == grant
    assert config.grants[1].principal == "grant:bad"  # a BrokenEntry
    assert config.issuer_for(GITHUB_ISSUER) == issuer
    assert config.issuer_for(GITHUB_ISSUER + "/") is None


def test_the_grants_file_holds_issuers_and_oidc_grants_beside_iam_grants(tmp_path: Path) -> None:
    from stsvend.checkout.grants_file import load_grants_file

    session = tmp_path / "session"
    session.mkdir()
    entries = [
        {"oidc_grant": "octo-read", "issuer": "github", "claims": {"repository_id": "1"}, "roles": [ROLE]},
        {"oidc_issuer": "github", **_issuer()},
        {"principal": "arn:aws:iam::111111111111:user/sample-app", "roles": [ROLE]},
    ]
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(entries))
    loaded = load_grants_file(path, session)
    assert [e.principal for e in loaded] == [
        "arn:aws:iam::111111111111:user/sample-app",
        "issuer:github",
        "grant:octo-read",
    ]
    entries.append(
        {"oidc_grant": "octo-read", "issuer": "github", "claims": {"repository_id": "2"}, "roles": [ROLE]}
    )
    path.write_text(json.dumps(entries))
    with pytest.raises(GrantError, match="granted twice"):
        load_grants_file(path, session)
    path.write_text(json.dumps([{"oidc_grant": "x", "issuer": "nowhere", "claims": {}, "roles": [ROLE]}]))
    with pytest.raises(GrantError, match=r"grants\[0\].*not configured"):
        load_grants_file(path, session)
