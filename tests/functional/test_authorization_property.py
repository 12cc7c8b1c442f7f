"""The service's decision equals a simple, independent reference model, for generated grant tables
and requests; a denied request never reaches STS."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chalicelib.errors import StsvendError
from chalicelib.service import Incoming
from tests.functional.fakes import NOW, fake_service

ACCOUNTS = ("111111111111", "222222222222")
NAMES = ("ci", "ci-build", "ci-deploy", "deploy", "jenkins")
# Grants may spell a caller's name in another case (IAM names are case-insensitive), and patterns
# may repeat `*`, which adds nothing to how specific they are.
GRANT_NAMES = (*NAMES, "CI-Build", "Deploy")
PATTERNS = ("ci-*", "ci*", "*", "*-build", "c*d", "*build*", "de*", "*s", "ci-**", "**build", "CI-*")
UNIQUE_IDS = ("AROAAAAAAAAAAAAAAAAA", "AROABBBBBBBBBBBBBBBB")
ROLES = (
    "arn:aws:iam::333333333333:role/deployer",
    "arn:aws:iam::333333333333:role/read-only",
    "arn:aws:iam::111111111111:role/team/auditor",
)
UNGRANTED_ROLE = "arn:aws:iam::333333333333:role/admin"
CIDR_SETS = ((), ("10.0.0.0/8",), ("192.168.0.0/16", "10.1.0.0/16"), ("2001:db8::/32",))
SOURCE_IPS = ("10.1.2.3", "10.9.9.9", "192.168.1.1", "172.16.0.1", "2001:db8::5")
TAG_KEYS = ("build-id", "Job-Name", "team", "stsvend:caller", "STSVEND:Request-Id")


@st.composite
def grant_items(draw: st.DrawFn, account: str, kind: str, name: str) -> dict[str, Any]:
    """A grant, usually in the caller's account and of its kind, so that most cases are decided
    by the grants' fields rather than by having no grant at all."""
    account = draw(st.sampled_from((account,) * 4 + ACCOUNTS))
    kind = draw(st.sampled_from((kind,) * 4 + ("role", "user")))
    exact = draw(st.booleans())
    name = draw(st.sampled_from((name,) * 3 + GRANT_NAMES if exact else PATTERNS))
    item: dict[str, Any] = {
        "account_id": account,
        "principal": f"arn:aws:iam::{account}:{kind}/{name}",
        "enabled": draw(st.sampled_from((True, True, True, False))),
        "source_cidrs": list(draw(st.sampled_from(((),) * 3 + CIDR_SETS))),
        "request_tags": draw(st.lists(st.sampled_from(("build-id", "job-name")), unique=True)),
        "roles": [
            {"role_arn": arn, "max_duration_seconds": draw(st.sampled_from((900, 1800, 3600)))}
            for arn in draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True))
        ],
    }
    expiry = draw(st.sampled_from((None, None, None, -3600, -1, 0, 1, 3600)))
    if expiry is not None:
        item["not_after"] = (NOW + timedelta(seconds=expiry)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if exact and draw(st.booleans()):
        item["principal_id"] = draw(st.sampled_from(UNIQUE_IDS))
    return item


@dataclass(frozen=True)
class Case:
    account: str
    kind: str
    name: str
    unique_id: str
    source_ip: str
    role_arn: str
    duration: int | None
    tags: dict[str, str]

    @property
    def principal(self) -> str:
        return f"arn:aws:iam::{self.account}:{self.kind}/{self.name}"

    def identity(self) -> dict[str, str]:
        if self.kind == "role":
            arn = f"arn:aws:sts::{self.account}:assumed-role/{self.name}/session-1"
            user_id = f"{self.unique_id}:session-1"
        else:
            arn = self.principal
            user_id = self.unique_id.replace("AROA", "AIDA")
        return {"userArn": arn, "caller": user_id, "accountId": self.account, "sourceIp": self.source_ip}


cases = st.builds(
    Case,
    account=st.sampled_from(ACCOUNTS),
    kind=st.sampled_from(("role", "user")),
    name=st.sampled_from(NAMES),
    unique_id=st.sampled_from(UNIQUE_IDS),
    source_ip=st.sampled_from(SOURCE_IPS),
    role_arn=st.sampled_from((*ROLES, *ROLES, UNGRANTED_ROLE)),
    duration=st.sampled_from((None, None, 600, 900, 1800, 3600, 3601)),
    tags=st.one_of(st.just({}), st.dictionaries(st.sampled_from(TAG_KEYS), st.just("v"), max_size=3)),
)


def reference_decision(table: list[dict[str, Any]], case: Case) -> str | tuple[str, int]:
    """The rules of docs/design.md §3-§4, written plainly: returns a denial Code or ("vend", duration)."""
    prefix = f"arn:aws:iam::{case.account}:{case.kind}/"
    mine = [g for g in table if g["account_id"] == case.account and g["principal"].startswith(prefix)]
    # Names match regardless of case; two exact grants (differing in case) are ambiguous and deny.
    exact = [g for g in mine if g["principal"].lower() == case.principal.lower()]
    patterns = [
        g
        for g in mine
        if "*" in g["principal"]
        and fnmatch.fnmatchcase(case.name.lower(), g["principal"][len(prefix) :].lower())
    ]
    if len(exact) > 1:
        return "CallerNotAllowed"
    if exact:
        grant = exact[0]
    elif patterns:
        # The most literal characters win; `*` counts nothing; a tie denies.
        def literal(g: dict[str, Any]) -> int:
            return len(g["principal"].replace("*", ""))

        most = max(literal(g) for g in patterns)
        best = [g for g in patterns if literal(g) == most]
        if len(best) > 1:
            return "CallerNotAllowed"
        grant = best[0]
    else:
        return "CallerNotAllowed"
    if not grant["enabled"]:
        return "CallerNotAllowed"
    if "not_after" in grant and NOW.strftime("%Y-%m-%dT%H:%M:%SZ") >= grant["not_after"]:
        return "CallerNotAllowed"
    caller_unique = case.unique_id if case.kind == "role" else case.unique_id.replace("AROA", "AIDA")
    if "principal_id" in grant and grant["principal_id"] != caller_unique:
        return "CallerNotAllowed"
    if grant["source_cidrs"]:
        ip = ipaddress.ip_address(case.source_ip)
        if not any(ip in ipaddress.ip_network(c) for c in grant["source_cidrs"]):
            return "SourceNotAllowed"
    roles = {r["role_arn"]: r["max_duration_seconds"] for r in grant["roles"]}
    if case.role_arn not in roles:
        return "RoleNotGranted"
    duration = roles[case.role_arn] if case.duration is None else case.duration
    if not 900 <= duration <= roles[case.role_arn]:
        return "DurationNotAllowed"
    allowed = {k.lower() for k in grant["request_tags"]}
    for key in case.tags:
        if key.lower().startswith("stsvend:") or key.lower() not in allowed:
            return "TagNotAllowed"
    return ("vend", duration)


def unique_principals(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's key is (account_id, principal): one item per key, the last written wins."""
    return list({(i["account_id"], i["principal"]): i for i in items}.values())


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases, data=st.data())
def test_decision_matches_the_reference_model(case: Case, data: st.DataObject) -> None:
    table = data.draw(
        st.lists(grant_items(case.account, case.kind, case.name), min_size=1, max_size=8).map(
            unique_principals
        ),
        "table",
    )
    service, sts = fake_service(table)
    body: dict[str, Any] = {"role_arn": case.role_arn, "tags": case.tags}
    if case.duration is not None:
        body["duration_seconds"] = case.duration
    incoming = Incoming("req-1", {"identity": case.identity()}, {}, json.dumps(body).encode())

    expected = reference_decision(table, case)
    try:
        answer = service.vend(incoming)
        outcome: str | tuple[str, int] = ("vend", sts.calls[0]["DurationSeconds"])
    except StsvendError as exc:
        outcome = exc.code
        answer = None

    event(outcome if isinstance(outcome, str) else "vended")
    assert outcome == expected
    if answer is None:
        assert sts.calls == [], "a denied request reached STS"
    else:
        (call,) = sts.calls
        assert call["RoleArn"] == case.role_arn
        assert answer["AccessKeyId"].startswith("ASIA")
