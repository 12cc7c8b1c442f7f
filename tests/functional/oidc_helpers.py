"""What the OIDC route's tests share: a local issuer the stack trusts, grants for it, a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.grant_store import to_item
from chalicelib.oidc.config import Issuer, OidcGrant, parse_issuer, parse_oidc_grant
from stsvend.local.oidc_issuer import AUDIENCE, LocalIssuer
from tests.functional.conftest import READ_ONLY, SESSION_POLICY, TABLE, Invocation, Stack

OWNER_ID = "9000001"
REPO_ID = "400000001"


def issuer_entry(issuer: LocalIssuer, name: str = "gha", **overrides: Any) -> Issuer:
    raw = {"kind": issuer.kind, "issuer": issuer.url, "audiences": [AUDIENCE], **overrides}
    return parse_issuer(raw, name)


def grant_entry(issuer: Issuer, name: str = "octo-read", **overrides: Any) -> OidcGrant:
    raw: dict[str, Any] = {
        "issuer": issuer.name,
        "claims": {"repository_id": REPO_ID, "ref": "refs/heads/main"},
        "description": "octo-repo's main branch reads EC2",
        "roles": [
            {
                "role_arn": READ_ONLY,
                "max_duration_seconds": 1800,
                "session_policy": "ec2-read-only",
                "session_policy_document": json.dumps(SESSION_POLICY),
            }
        ],
        **overrides,
    }
    return parse_oidc_grant(raw, name, {issuer.name: issuer})


def store(stack: Stack, *entries: Issuer | OidcGrant) -> None:
    for entry in entries:
        stack.ddb.put_item(TableName=TABLE, Item=to_item(entry.to_item()))


def call(stack: Stack, token: str | None, body: Any = None, scheme: str = "Bearer") -> Invocation:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return stack.invoke(
        "POST",
        "/oidc/credentials",
        body if body is not None else {"role_arn": READ_ONLY},
        identity={"sourceIp": "198.51.100.7", "userAgent": "pytest"},
        headers=headers,
    )


@pytest.fixture
def github() -> Iterator[LocalIssuer]:
    with LocalIssuer("github-actions") as issuer:
        yield issuer


def audit_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{") and '"event"' in line:
            lines.append(json.loads(line))
    return lines
