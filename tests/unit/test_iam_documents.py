"""The IAM documents in the repository (policies/, .chalice/policy-*.json, .chalice/api-policy-*.json):
IAM grammar, parliament's findings, and that the AssumeRole request the service builds satisfies the
conditions of its own role policy and of the target-role trust template (and one without the
attribution does not)."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string, enhance_finding

from chalicelib.grants import parse_grant
from chalicelib.identity import build_caller
from chalicelib.policy import MAX_SESSION_POLICY_CHARS, minify_session_policy
from chalicelib.vending import CredentialRequest, plan_assume_role
from stsvend.checkout.trust_policy import (
    EXTERNAL_ID_PLACEHOLDER,
    SERVICE_ROLE_PLACEHOLDER,
    render_trust_policy,
)
from stsvend.errors import CommandError

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
CHALICE = ROOT / ".chalice"
FINDINGS_FILE = POLICIES / "parliament-findings.md"
TRUST_TEMPLATE = POLICIES / "trust" / "stsvend-target-role.json"
DEPLOYED_STAGES = ("dev", "prod")

SERVICE_ROLE = "arn:aws:iam::111111111111:role/stsvend-prod"
TARGET_ROLE = "arn:aws:iam::222222222222:role/deployer"
# Each placeholder, the step that fills it, and the sample value it gets before linting.
PLACEHOLDERS = {
    "STSVEND_SERVICE_ROLE_ARN": SERVICE_ROLE,  # stsvend trust-policy --service-role
    "EXTERNAL_ID": "stsvend-prod",  # stsvend trust-policy --external-id
    "STSVEND_SERVICE_ARN": "arn:aws:iam::111111111111:user/stsvend",  # the local stack's bootstrap
    "ORGANIZATION_ID": "o-a1b2c3d4e5",  # by hand, docs/deploying.md
    "VPC_ENDPOINT_ID": "vpce-0123456789abcdef0",  # by hand, docs/deploying.md
}
# IAM quotas, counted without white space: a role's inline policies together, a trust policy
# (the default quota; it can be raised to 4,096), an API Gateway resource policy.
MAX_CHARS = {"identity": 10_240, "session": MAX_SESSION_POLICY_CHARS, "trust": 2_048, "resource": 8_192}

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")
_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov|\*):[a-z0-9-]+:[a-z0-9-*]*:(\d{12}|\*)?:.+$")
_PRINCIPAL_ARN = re.compile(
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|user/.+|role/.+)|sts::\d{12}:assumed-role/.+)$"
)
_SID = re.compile(r"^[A-Za-z0-9]*$")
_CONDITION_KEY = re.compile(r"^[A-Za-z0-9.-]+:[A-Za-z0-9_./:@-]+$")
_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
    "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals",
    "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
    "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals",
    "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}
_STATEMENT_KEYS = {
    "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal",
    "Condition",
}


@dataclass(frozen=True)
class Document:
    path: Path
    kind: str  # identity | session | trust | resource

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    def filled(self) -> dict[str, Any]:
        """The document with its placeholders replaced by sample values."""
        text = self.path.read_text(encoding="utf-8")
        for name, value in PLACEHOLDERS.items():
            text = text.replace("${" + name + "}", value)
        document: dict[str, Any] = json.loads(text)
        return document


def iam_documents() -> list[Document]:
    documents = [Document(p, "session") for p in sorted((POLICIES / "session").glob("*.json"))]
    documents += [Document(p, "trust") for p in sorted((POLICIES / "trust").glob("*.json"))]
    documents += [
        Document(p, "trust" if "trust" in p.stem else "identity")
        for p in sorted((POLICIES / "sample").glob("*.json"))
    ]
    documents += [Document(p, "identity") for p in sorted(CHALICE.glob("policy-*.json"))]
    documents += [Document(p, "resource") for p in sorted(CHALICE.glob("api-policy-*.json"))]
    return documents


DOCUMENTS = iam_documents()
by_name = pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])


# --- IAM grammar -------------------------------------------------------------------------------


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _known_actions() -> dict[str, list[str]]:
    """Service prefix -> its actions, from the IAM definitions parliament ships."""
    import parliament

    definitions = json.loads(
        (Path(parliament.__file__).parent / "iam_definition.json").read_text(encoding="utf-8")
    )
    return {s["prefix"]: [p["privilege"].lower() for p in s["privileges"]] for s in definitions}


def _action_errors(action: Any) -> list[str]:
    if not isinstance(action, str) or not (action == "*" or _ACTION.fullmatch(action)):
        return [f"action {action!r} is not service:Name"]
    if action == "*":
        return []
    prefix, name = action.split(":")
    known = _known_actions()
    if prefix not in known:
        return [f"action {action!r}: no service has the prefix {prefix!r}"]
    if not fnmatch.filter(known[prefix], name.lower()):
        return [f"action {action!r} matches no {prefix} action"]
    return []


def _principal_errors(principal: Any) -> list[str]:
    if principal == "*":
        return []
    if not isinstance(principal, dict) or not principal:
        return [f"Principal {principal!r} must be \"*\" or an object"]
    errors = []
    for kind, values in principal.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            errors.append(f"Principal has an unknown kind {kind!r}")
        for value in _strings(values):
            if not isinstance(value, str):
                errors.append(f"Principal {kind} value {value!r} is not a string")
            elif kind == "AWS" and not (
                value == "*" or re.fullmatch(r"\d{12}", value) or _PRINCIPAL_ARN.fullmatch(value)
            ):
                errors.append(f"Principal AWS {value!r} is not an account, user, role or session")
    return errors


def _condition_errors(condition: Any) -> list[str]:
    if not isinstance(condition, dict) or not condition:
        return ["Condition must be a non-empty object"]
    errors = []
    for operator, tests in condition.items():
        base = re.sub(r"^For(All|Any)Value:", "", operator)
        base = base[: -len("IfExists")] if base.endswith("IfExists") and base != "Null" else base
        if base not in _OPERATORS:
            errors.append(f"condition operator {operator!r} is unknown")
        if not isinstance(tests, dict) or not tests:
            errors.append(f"{operator} must map condition keys to values")
            continue
        for key, values in tests.items():
            if not _CONDITION_KEY.fullmatch(key):
                errors.append(f"condition key {key!r} is not prefix:name")
            for value in _strings(values):
                if not isinstance(value, (str, bool, int)) or value == "":
                    errors.append(f"{operator} {key}: {value!r} is not a usable value")
            if base == "Null" and any(str(v).lower() not in ("true", "false") for v in _strings(values)):
                errors.append(f"Null {key} must be true or false")
    return errors


def grammar_errors(document: dict[str, Any], kind: str) -> list[str]:
    if not isinstance(document, dict):
        return ["the document must be a JSON object"]
    errors = [f"unknown top-level key {k!r}" for k in set(document) - {"Version", "Id", "Statement"}]
    if document.get("Version") != "2012-10-17":
        errors.append('Version must be "2012-10-17" (the one that allows policy variables)')
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return [*errors, "Statement must be a non-empty list"]
    sids = [s.get("Sid") for s in statements if isinstance(s, dict) and s.get("Sid")]
    if len(sids) != len(set(sids)):
        errors.append("a Sid is repeated")
    for index, statement in enumerate(statements):
        where = f"Statement[{index}]"
        if not isinstance(statement, dict):
            errors.append(f"{where} is not an object")
            continue
        errors += [f"{where}: unknown key {k!r}" for k in set(statement) - _STATEMENT_KEYS]
        if not _SID.fullmatch(str(statement.get("Sid", ""))):
            errors.append(f"{where}: Sid must be letters and digits only")
        if statement.get("Effect") not in ("Allow", "Deny"):
            errors.append(f"{where}: Effect must be Allow or Deny")
        if ("Action" in statement) == ("NotAction" in statement):
            errors.append(f"{where}: needs exactly one of Action and NotAction")
        has_resource = "Resource" in statement or "NotResource" in statement
        has_principal = "Principal" in statement or "NotPrincipal" in statement
        if "Resource" in statement and "NotResource" in statement:
            errors.append(f"{where}: has both Resource and NotResource")
        if kind in ("identity", "session"):
            if not has_resource:
                errors.append(f"{where}: an identity or session policy statement needs a Resource")
            if has_principal:
                errors.append(f"{where}: an identity or session policy cannot name a Principal")
        if kind == "trust":
            if has_resource:
                errors.append(f"{where}: a trust policy has no Resource (it is the role)")
            if "Principal" not in statement:
                errors.append(f"{where}: a trust policy statement needs a Principal")
        if kind == "resource" and not (has_resource and "Principal" in statement):
            errors.append(f"{where}: a resource policy statement needs a Principal and a Resource")
        for key in ("Action", "NotAction"):
            for action in _strings(statement.get(key, [])):
                errors += [f"{where}: {e}" for e in _action_errors(action)]
                if kind == "trust" and not str(action).startswith("sts:"):
                    errors.append(f"{where}: a trust policy allows only sts: actions")
                if kind == "resource" and not str(action).startswith("execute-api:"):
                    errors.append(f"{where}: the API's resource policy allows only execute-api:")
        for key in ("Resource", "NotResource"):
            for resource in _strings(statement.get(key, [])):
                if resource != "*" and not (isinstance(resource, str) and _ARN.fullmatch(resource)):
                    errors.append(f"{where}: {key} {resource!r} is neither * nor an ARN")
        if "Principal" in statement:
            errors += [f"{where}: {e}" for e in _principal_errors(statement["Principal"])]
        if "Condition" in statement:
            errors += [f"{where}: {e}" for e in _condition_errors(statement["Condition"])]
    text = json.dumps(document)
    leftover = [name for name in _PLACEHOLDER.findall(text) if ":" not in name]
    if leftover:
        errors.append(f"placeholders no step fills: {', '.join(sorted(set(leftover)))}")
    packed = len(json.dumps(document, separators=(",", ":")))
    if packed > MAX_CHARS[kind]:
        errors.append(f"{packed} characters; IAM allows {MAX_CHARS[kind]} for a {kind} policy")
    return errors


def test_every_json_file_under_policies_is_checked() -> None:
    """Grants files are not IAM policies: tests/unit/test_grants_file.py validates them."""
    checked = {d.path for d in DOCUMENTS}
    everything = {p for p in POLICIES.rglob("*.json") if p.parent.name != "grants"}
    assert everything - checked == set()
    assert (CHALICE / "policy-dev.json") in checked and (CHALICE / "api-policy-prod.json") in checked


@by_name
def test_iam_grammar(document: Document) -> None:
    assert grammar_errors(document.filled(), document.kind) == []


@pytest.mark.parametrize(
    ("document", "kind", "error"),
    [
        ({"Version": "2012-10-17", "Statement": []}, "identity", "Statement must be a non-empty list"),
        (
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*"}]},
            "identity",
            "needs a Resource",
        ),
        (
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:Fly", "Resource": "*"}
            ]},
            "session",
            "matches no s3 action",
        ),
        (
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "${SERVICE}"}, "Action": "sts:AssumeRole"}
            ]},
            "trust",
            "placeholders no step fills: SERVICE",
        ),
        (
            {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": SERVICE_ROLE}, "Action": "sts:AssumeRole",
                "Condition": {"StringLikeish": {"aws:RequestTag/x": "*"}},
            }]},
            "trust",
            "condition operator 'StringLikeish' is unknown",
        ),
        (
            {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": SERVICE_ROLE}, "Action": "sts:AssumeRole",
                "Resource": TARGET_ROLE,
            }]},
            "trust",
            "a trust policy has no Resource",
        ),
    ],
)
def test_the_grammar_check_catches_what_iam_would_refuse(
    document: dict[str, Any], kind: str, error: str
) -> None:
    assert any(error in e for e in grammar_errors(document, kind)), grammar_errors(document, kind)


@pytest.mark.parametrize("path", sorted((POLICIES / "session").glob("*.json")), ids=lambda p: p.name)
def test_session_policies_pass_the_servers_own_check(path: Path) -> None:
    assert json.loads(minify_session_policy(path.read_text(encoding="utf-8")))


# --- parliament --------------------------------------------------------------------------------


SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


@dataclass(frozen=True)
class Finding:
    file: str
    issue: str
    severity: str
    detail: str


@cache
def parliament_findings(document: Document) -> tuple[Finding, ...]:
    policy = document.filled()
    if document.kind == "trust":
        # parliament reads every policy as an identity policy and would report the missing Resource;
        # a trust policy's resource is the role it is attached to.
        for statement in policy["Statement"]:
            statement["Resource"] = TARGET_ROLE
    return tuple(
        Finding(document.name, f.issue, f.severity, str(f.detail)[:200]) for f in analyze(policy)
    )


def analyze(policy: dict[str, Any]) -> list[Any]:
    """parliament's findings, with the severity its configuration gives each."""
    result = analyze_policy_string(json.dumps(policy), ignore_private_auditors=True)
    return [enhance_finding(f) for f in result.findings]


def above_low(severity: str) -> bool:
    return SEVERITIES.index(severity) > SEVERITIES.index("LOW")


def justified_findings() -> set[tuple[str, str]]:
    """(file, issue) pairs of the table in policies/parliament-findings.md."""
    rows = re.findall(
        r"^\|\s*`([^`]+)`\s*\|\s*`([A-Z_]+)`\s*\|", FINDINGS_FILE.read_text(encoding="utf-8"), re.M
    )
    return set(rows)


@by_name
def test_parliament_finds_nothing_above_low_that_is_not_justified(document: Document) -> None:
    justified = justified_findings()
    unjustified = [
        f for f in parliament_findings(document)
        if above_low(f.severity) and (f.file, f.issue) not in justified
    ]
    assert unjustified == [], f"justify each in {FINDINGS_FILE.name} or fix the policy"


def test_every_justified_finding_is_still_reported() -> None:
    reported = {(f.file, f.issue) for d in DOCUMENTS for f in parliament_findings(d)}
    assert justified_findings(), f"{FINDINGS_FILE.name} has no table rows"
    assert justified_findings() - reported == set(), "remove the stale rows"


def test_parliament_reports_what_it_is_trusted_to_catch() -> None:
    broad = Document(POLICIES / "sample" / "read-only-policy.json", "identity")
    assert {f.issue for f in parliament_findings(broad)} == {"RESOURCE_STAR"}
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:SetSourceIdentity", "Resource": TARGET_ROLE,
         "Condition": {"StringEquals": {"sts:ExternalId": "x"}}},
    ]}
    assert [(f.issue, f.severity) for f in analyze(bad)] == [("UNKNOWN_CONDITION_FOR_ACTION", "MEDIUM")]


# --- what the service sends to STS, against its role policy and the trust template -------------


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in _strings(patterns))


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, list[str]]) -> bool:
    """IAM's evaluation of the operators these documents use; any other operator fails the test."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            present = context.get(key.lower())
            values = [str(v) for v in _strings(expected)]
            if operator == "Null":
                holds = (present is None) == (values[0].lower() == "true")
            elif present is None:
                holds = operator.startswith(("StringNot", "ForAllValues:"))
            elif operator == "StringEquals":
                holds = any(p in values for p in present)
            elif operator == "StringNotEquals":
                holds = all(p not in values for p in present)
            elif operator == "StringLike":
                holds = any(fnmatch.fnmatchcase(p, v) for p in present for v in values)
            elif operator == "ForAllValues:StringEquals":
                holds = all(p in values for p in present)
            else:
                raise AssertionError(f"the evaluator in this test does not know {operator}")
            if not holds:
                return False
    return True


def allowed(
    policy: dict[str, Any], action: str, resource: str, principal: str | None, context: dict[str, list[str]]
) -> bool:
    verdicts = set()
    for statement in policy["Statement"]:
        if not _matches(statement["Action"], action):
            continue
        if "Resource" in statement and not _matches(statement["Resource"], resource):
            continue
        if "Principal" in statement and principal not in _strings(statement["Principal"].get("AWS")):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            verdicts.add(statement["Effect"])
    return verdicts == {"Allow"}


def sts_request(external_id: str | None = None) -> dict[str, Any]:
    """The AssumeRole parameters the service builds for a granted caller."""
    role: dict[str, Any] = {"role_arn": TARGET_ROLE, "max_duration_seconds": 3600}
    if external_id:
        role["external_id"] = external_id
    grant = parse_grant(
        {"principal": "arn:aws:iam::111111111111:role/jenkins-agent", "account_id": "111111111111",
         "request_tags": ["build-id"], "roles": [role]}
    )
    caller = build_caller(
        "arn:aws:sts::111111111111:assumed-role/jenkins-agent/i-0abc", "AROAX:i-0abc", "111111111111",
        "10.0.0.1", "pytest",
    )
    request = CredentialRequest(TARGET_ROLE, None, {"build-id": "42"})
    params: dict[str, Any] = plan_assume_role(caller, request, grant, "req-1").params
    return params


def request_context(params: dict[str, Any]) -> dict[str, list[str]]:
    """The condition keys STS puts in the request context of an AssumeRole call."""
    context = {f"aws:requesttag/{t['Key']}".lower(): [t["Value"]] for t in params.get("Tags", [])}
    if params.get("Tags"):
        context["aws:tagkeys"] = [t["Key"] for t in params["Tags"]]
    if params.get("TransitiveTagKeys"):
        context["sts:transitivetagkeys"] = list(params["TransitiveTagKeys"])
    for key, name in (("SourceIdentity", "sts:sourceidentity"), ("ExternalId", "sts:externalid"),
                      ("RoleSessionName", "sts:rolesessionname")):
        if params.get(key):
            context[name] = [params[key]]
    return context


def required_actions(params: dict[str, Any]) -> list[str]:
    """What IAM authorizes for one AssumeRole call: tags need TagSession, a source identity
    SetSourceIdentity, in the caller's role policy and in the target role's trust policy alike."""
    return (
        ["sts:AssumeRole"]
        + (["sts:TagSession"] if params.get("Tags") else [])
        + (["sts:SetSourceIdentity"] if params.get("SourceIdentity") else [])
    )


def without(params: dict[str, Any], *, tag: str | None = None, key: str | None = None) -> dict[str, Any]:
    stripped = {k: v for k, v in params.items() if k != key}
    if tag:
        stripped["Tags"] = [t for t in params["Tags"] if t["Key"] != tag]
    return stripped


def trust_policy(external_id: str | None) -> dict[str, Any]:
    template = json.loads(TRUST_TEMPLATE.read_text(encoding="utf-8"))
    return render_trust_policy(template, SERVICE_ROLE, external_id)


def test_the_trust_template_has_only_the_placeholders_stsvend_trust_policy_fills() -> None:
    names = set(_PLACEHOLDER.findall(TRUST_TEMPLATE.read_text(encoding="utf-8")))
    assert {"${" + n + "}" for n in names} == {SERVICE_ROLE_PLACEHOLDER, EXTERNAL_ID_PLACEHOLDER}


@pytest.mark.parametrize("external_id", [None, "stsvend-prod"])
def test_the_services_request_fits_the_trust_template(external_id: str | None) -> None:
    params = sts_request(external_id)
    policy = trust_policy(external_id)
    assert required_actions(params) == ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    for action in required_actions(params):
        assert allowed(policy, action, TARGET_ROLE, SERVICE_ROLE, request_context(params)), action


def test_the_trust_template_admits_only_tagged_sessions_of_the_service_role() -> None:
    params = sts_request("stsvend-prod")
    policy = trust_policy("stsvend-prod")

    def assumable(request: dict[str, Any], principal: str = SERVICE_ROLE) -> bool:
        return allowed(policy, "sts:AssumeRole", TARGET_ROLE, principal, request_context(request))

    assert assumable(params)
    assert not assumable(without(params, tag="stsvend:caller"))
    assert not assumable(without(params, key="Tags"))
    assert not assumable(params, "arn:aws:iam::111111111111:role/someone-else")
    assert not assumable({**params, "ExternalId": "guess"})
    assert not assumable(without(params, key="ExternalId"))


def oidc_sts_request(issuer_name: str, external_id: str | None = None) -> dict[str, Any]:
    """The AssumeRole parameters the OIDC route builds (chalicelib.oidc.vend.plan) for a verified
    GitHub Actions token and its grant."""
    from chalicelib.oidc.config import parse_issuer, parse_oidc_grant
    from chalicelib.oidc.vend import plan

    issuer = parse_issuer(
        {"kind": "github-actions", "issuer": "https://token.actions.githubusercontent.com",
         "audiences": ["stsvend"], "required_claims": {"repository_owner_id": "9000001"}},
        issuer_name,
    )
    role: dict[str, Any] = {"role_arn": TARGET_ROLE, "max_duration_seconds": 3600}
    if external_id:
        role["external_id"] = external_id
    grant = parse_oidc_grant(
        {"issuer": issuer_name, "claims": {"repository_id": "400000001"}, "roles": [role]},
        "octo-main", {issuer_name: issuer},
    )
    claims = {"repository_id": "400000001", "repository_owner_id": "9000001", "run_id": "77",
              "run_attempt": "1", "repository": "octo-org/octo-repo", "ref": "refs/heads/main"}
    body = json.dumps({"role_arn": TARGET_ROLE}).encode()
    params: dict[str, Any] = plan(issuer, claims, grant, body, "aws", "req-1")[0].params
    return params


def test_an_oidc_vend_is_refused_by_the_default_trust_and_admitted_by_an_oidc_pattern() -> None:
    """An OIDC caller's session is tagged `oidc:<issuer>:<grant>`: the default trust (`arn:*`, IAM
    callers) refuses it; an `oidc:` pattern the role's owner opts into admits it, and only it."""
    params = oidc_sts_request("github", "stsvend-prod")
    tag = {t["Key"]: t["Value"] for t in params["Tags"]}["stsvend:caller"]
    assert tag == "oidc:github:octo-main"
    template = json.loads(TRUST_TEMPLATE.read_text(encoding="utf-8"))

    def admits(callers: list[str] | None, request: dict[str, Any]) -> bool:
        policy = render_trust_policy(template, SERVICE_ROLE, "stsvend-prod", callers)
        return all(
            allowed(policy, action, TARGET_ROLE, SERVICE_ROLE, request_context(request))
            for action in required_actions(request)
        )

    iam_caller = sts_request("stsvend-prod")
    assert required_actions(params) == ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    assert not admits(None, params) and admits(None, iam_caller)
    for callers in (["arn:*", "oidc:*"], ["arn:*", "oidc:github:*"], ["oidc:github:octo-main"]):
        assert admits(callers, params), callers
    assert not admits(["oidc:github:octo-main"], iam_caller)
    assert not admits(["arn:*", "oidc:gitlab:*"], params)
    assert not admits(["arn:*", "oidc:github:other"], params)
    assert not admits(["arn:*", "oidc:*"], oidc_sts_request("github", "guess"))
    assert not admits(["arn:*", "oidc:*"], without(params, tag="stsvend:caller"))


@pytest.mark.parametrize(
    "pattern",
    ["*", "oidc", "gh:*", "oidc:", "arn:", "oidc:github *", "oidc:gith\u00fcb:*", "arn:aws:iam::1:role/a,b",
     "oidc:" + "x" * 252, "OIDC:*", "oidc:a\nb"],
)
def test_trust_policy_refuses_a_caller_pattern_that_cannot_match_a_caller_tag(pattern: str) -> None:
    template = json.loads(TRUST_TEMPLATE.read_text(encoding="utf-8"))
    with pytest.raises(CommandError, match="--allowed-caller"):
        render_trust_policy(template, SERVICE_ROLE, None, ["arn:*", pattern])


@pytest.mark.parametrize(
    "callers", [["oidc:*"], ["arn:*", "oidc:github:*", "oidc:gitlab-prod:deploy-*", "oidc:buildkite:?*"]]
)
def test_a_trust_policy_with_oidc_callers_passes_grammar_and_quota(callers: list[str]) -> None:
    template = json.loads(TRUST_TEMPLATE.read_text(encoding="utf-8"))
    rendered = render_trust_policy(template, SERVICE_ROLE, "x" * 1224, callers)
    assert grammar_errors(rendered, "trust") == []
    assert len(json.dumps(rendered, separators=(",", ":"))) <= MAX_CHARS["trust"]
    assert [s["Condition"]["StringLike"]["aws:RequestTag/stsvend:caller"] for s in rendered["Statement"]] == [
        callers[0] if len(callers) == 1 else callers
    ] * 2


@pytest.mark.parametrize("external_id", [None, "x" * 1224])
def test_the_rendered_trust_policy_fits_iams_trust_policy_quota(external_id: str | None) -> None:
    rendered = trust_policy(external_id)
    assert grammar_errors(rendered, "trust") == []
    assert len(json.dumps(rendered, separators=(",", ":"))) <= MAX_CHARS["trust"]


def role_policy(stage: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads((CHALICE / f"policy-{stage}.json").read_text(encoding="utf-8"))
    return policy


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_services_request_fits_its_role_policy(stage: str) -> None:
    params = sts_request("stsvend-prod")
    for action in required_actions(params):
        assert allowed(role_policy(stage), action, TARGET_ROLE, None, request_context(params)), action


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_role_policy_lets_the_service_mint_no_session_without_attribution(stage: str) -> None:
    params = sts_request()
    for stripped in (without(params, tag="stsvend:caller"), without(params, key="Tags"),
                     without(params, key="SourceIdentity")):
        assert not allowed(role_policy(stage), "sts:AssumeRole", TARGET_ROLE, None, request_context(stripped))


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_role_policy_reads_only_its_stages_grants_table(stage: str) -> None:
    config = json.loads((CHALICE / "config.json").read_text(encoding="utf-8"))
    table = config["stages"][stage]["environment_variables"]["STSVEND_GRANTS_TABLE"]
    assert config["stages"][stage]["iam_policy_file"] == f"policy-{stage}.json"
    statements = role_policy(stage)["Statement"]
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in _strings(s["Action"]))]
    assert [(s["Action"], s["Resource"]) for s in dynamodb] == [
        ("dynamodb:Query", f"arn:aws:dynamodb:*:*:table/{table}")
    ]
    other_table = "stsvend-grants-" + ("prod" if stage == "dev" else "dev")
    tables = "arn:aws:dynamodb:eu-west-1:111111111111:table/"

    def may(action: str, resource: str) -> bool:
        return allowed(role_policy(stage), action, resource, None, {})

    assert may("dynamodb:Query", tables + table)
    assert not may("dynamodb:Query", tables + table + "/index/by-role")
    assert not may("dynamodb:Query", tables + other_table)
    for action in ("dynamodb:PutItem", "dynamodb:Scan", "sts:GetFederationToken", "iam:PassRole"):
        assert not may(action, "*"), action


def test_a_stage_that_uses_an_api_policy_names_a_file_without_placeholders() -> None:
    config = json.loads((CHALICE / "config.json").read_text(encoding="utf-8"))
    for name, stage in config["stages"].items():
        policy_file = stage.get("api_gateway_policy_file")
        if policy_file is None:
            continue
        text = (CHALICE / policy_file).read_text(encoding="utf-8")
        leftover = [p for p in _PLACEHOLDER.findall(text) if ":" not in p]
        assert leftover == [], f"stage {name} would deploy {policy_file} with {leftover} unfilled"


def test_session_policies_allow_create_tags_only_while_launching() -> None:
    """Tagging any existing resource with the build's tag would hand the build every tag-scoped
    permission on it (stop, terminate): CreateTags must be bound to the launch."""
    for path in sorted((ROOT / "policies" / "session").glob("*.json")):
        for statement in json.loads(path.read_text())["Statement"]:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement["Effect"] == "Allow" and any(a in ("ec2:CreateTags", "ec2:*", "*") for a in actions):
                create_action = statement.get("Condition", {}).get("StringEquals", {}).get("ec2:CreateAction")
                assert create_action, f"{path.name} {statement.get('Sid')}: CreateTags not bound to a launch"


# --- the API's resource policies, as API Gateway evaluates them --------------------------------

API_ARN = "arn:aws:execute-api:us-east-1:111111111111:a1b2c3d4e5"
ORGANIZATION = PLACEHOLDERS["ORGANIZATION_ID"]
ENDPOINT = PLACEHOLDERS["VPC_ENDPOINT_ID"]


def _routes() -> dict[tuple[str, str], bool]:
    """(method, path) -> whether API Gateway checks a SigV4 signature on it, for every route."""
    import app as app_module

    return {
        (method, path): entry.authorizer is not None
        for path, entries in app_module.app.routes.items()
        for method, entry in entries.items()
    }


def api_gateway_admits(
    policy: dict[str, Any], method: str, path: str, context: dict[str, list[str]]
) -> bool:
    """API Gateway with a resource policy and no other authorizer decision: an explicit Deny wins,
    an Allow admits, and with neither the call is refused (the API Gateway developer guide, "How
    API Gateway resource policies affect authorization workflow"). A signed route still needs the
    caller's own IAM policy, which this does not judge."""
    resource = f"{API_ARN}/prod/{method}{path}"
    verdicts = set()
    for statement in policy["Statement"]:
        assert statement["Principal"] == "*", "the evaluator knows only Principal *"
        if not _matches(statement["Action"], "execute-api:Invoke"):
            continue
        if "Resource" in statement and not _matches_case(statement["Resource"], resource):
            continue
        if "NotResource" in statement and _matches_case(statement["NotResource"], resource):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            verdicts.add(statement["Effect"])
    return verdicts == {"Allow"}


def _matches_case(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, str(p)) for p in _strings(patterns))


def caller(org: str | None, endpoint: str | None) -> dict[str, list[str]]:
    """The request context: an organization member signs (aws:PrincipalOrgID), a CI runner with no
    AWS identity does not, and a call through a VPC endpoint carries aws:SourceVpce."""
    context = {}
    if org is not None:
        context["aws:principalorgid"] = [org]
    if endpoint is not None:
        context["aws:sourcevpce"] = [endpoint]
    return context


API_POLICIES = {
    "api-policy-prod.json": None,  # reachable from anywhere
    "api-policy-prod-private.json": ENDPOINT,  # only through the VPC endpoint
}


@pytest.mark.parametrize("name", sorted(API_POLICIES))
def test_the_api_policy_admits_the_unsigned_routes_from_anywhere_and_the_rest_from_the_organization(
    name: str,
) -> None:
    policy = Document(CHALICE / name, "resource").filled()
    endpoint = API_POLICIES[name]
    routes = _routes()
    unsigned = {route for route, signed in routes.items() if not signed}
    assert unsigned == {
        ("POST", "/oidc/credentials"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/.well-known/jwks.json"),
    }
    for (method, path), signed in routes.items():
        member = api_gateway_admits(policy, method, path, caller(ORGANIZATION, endpoint))
        stranger = api_gateway_admits(policy, method, path, caller("o-zzzzzzzzzz", endpoint))
        runner = api_gateway_admits(policy, method, path, caller(None, endpoint))
        assert member, (method, path)
        assert (stranger, runner) == (not signed, not signed), (method, path)
    # Only those three: another method, a longer or a sibling path, a case variant stays closed.
    for method, path in [
        ("GET", "/oidc/credentials"), ("PUT", "/oidc/credentials"), ("POST", "/oidc/credentials/x"),
        ("POST", "/OIDC/credentials"), ("GET", "/.well-known/other"), ("POST", "/credentials"),
        ("GET", "/.well-known/jwks.json/x"), ("POST", "/.well-known/jwks.json"),
    ]:
        assert not api_gateway_admits(policy, method, path, caller(None, endpoint)), (method, path)


def test_the_private_api_policy_admits_nobody_off_the_endpoint() -> None:
    policy = Document(CHALICE / "api-policy-prod-private.json", "resource").filled()
    for method, path in _routes():
        for org in (ORGANIZATION, None):
            for endpoint in (None, "vpce-0fffffffffffffff0"):
                assert not api_gateway_admits(policy, method, path, caller(org, endpoint)), (method, path)


def test_the_policy_evaluator_refuses_unsigned_routes_under_an_organization_only_policy() -> None:
    """The evaluator itself: the organization policy as it was before the OIDC exception refuses
    a runner on the OIDC route and admits a member."""
    policy = Document(CHALICE / "api-policy-prod.json", "resource").filled()
    before = {"Statement": [s for s in policy["Statement"] if "Oidc" not in s["Sid"]]}
    for statement in before["Statement"]:
        if "NotResource" in statement:
            statement["Resource"] = "arn:*:execute-api:*:*:*"
            del statement["NotResource"]
    assert not api_gateway_admits(before, "POST", "/oidc/credentials", caller(None, None))
    assert api_gateway_admits(before, "POST", "/oidc/credentials", caller(ORGANIZATION, None))
