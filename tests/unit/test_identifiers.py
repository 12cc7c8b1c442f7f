"""One rule for each AWS identifier across the server and the command: chalicelib/arns.py defines
partitions, account ids, IAM names and every ARN pattern; stsvend/arns.py is that file, and no
other module holds a pattern of its own for them (read from the source). Every place that takes an
identifier refuses other scripts' digits and letters and other lookalikes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from stsvend.cli import main

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [*(ROOT / "chalicelib").rglob("*.py"), *(ROOT / "stsvend").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]
    + [ROOT / "app.py"]
)
DEFINITIONS = {ROOT / "chalicelib" / "arns.py", ROOT / "stsvend" / "arns.py"}
# IAM's name characters, as a character class spells them (in any order).
IAM_NAME_SET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-")
# What makes a string a pattern rather than text: a class, a group option, an escape, a count.
_REGEX_SIGNS = ("[", "(?", "\\", "{12}", "{{12}}")
_ARN_SIGNS = ("arn:", "iam::", "sts::", ":sns:")


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal but docstrings; an f-string as its literal parts, `{}` for each value."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {
        id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
    }
    # What a call other than re's is handed is text (a message, a name), not a pattern.
    messages = {
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and not (isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "re")
        for arg in [*node.args, *(k.value for k in node.keywords)]
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in messages:
            continue
        if isinstance(node, ast.JoinedStr):
            found.append(
                "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)  # type: ignore[misc]
            )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstrings
        ):
            found.append(node.value)
    return found


def _classes(text: str) -> list[set[str]]:
    """The character sets of the bracket classes in a pattern (ranges expanded)."""
    sets = []
    for body in re.findall(r"\[\^?((?:\\.|[^\]\\])+)\]", text):
        chars: set[str] = set()
        items = re.findall(r"\\.|.", body)
        i = 0
        while i < len(items):
            if i + 2 < len(items) and items[i + 1] == "-":
                chars |= {chr(c) for c in range(ord(items[i][-1]), ord(items[i + 2][-1]) + 1)}
                i += 3
            else:
                chars.add(items[i][-1])
                i += 1
        sets.append(chars)
    return sets


def identifier_patterns(source: str) -> list[str]:
    """The patterns in `source` that define an ARN, an account id or an IAM name, or that use a
    Unicode class (`\\d`, `\\w`) at all."""
    found = []
    for text in _strings(ast.parse(source)):
        if not any(sign in text for sign in _REGEX_SIGNS):
            continue
        if (
            any(sign in text for sign in _ARN_SIGNS)
            or "{12}" in text
            or re.search(r"\\[dwDW]", text)
            or any(chars - {"*"} == IAM_NAME_SET for chars in _classes(text))
        ):
            found.append(text)
    return found


def test_the_command_reads_the_servers_definitions_themselves() -> None:
    link = ROOT / "stsvend" / "arns.py"
    assert link.is_symlink() and link.samefile(ROOT / "chalicelib" / "arns.py")
    import chalicelib.arns
    import stsvend.arns

    assert stsvend.arns.ROLE_ARN.pattern == chalicelib.arns.ROLE_ARN.pattern


@pytest.mark.parametrize("path", sorted(set(SOURCES) - DEFINITIONS), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_other_module_defines_a_pattern_for_an_identifier(path: Path) -> None:
    assert identifier_patterns(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "line",
    [
        # As they were: each module its own rule, some with Unicode digits.
        r'ROLE_ARN = re.compile(rf"arn:{_PARTITION}:iam::\d{{12}}:role(?:/[A-Za-z0-9+=,.@_-]+)*/{_NAME}")',
        r'X = re.compile(r"arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/(?:[A-Za-z0-9_+=,.@-]+/)*"'
        r' r"([A-Za-z0-9_+=,.@-]{1,64})", re.ASCII)',
        r'POLICY_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::(?:aws|[0-9]{12}):policy/"'
        r' r"[\x21-\x7e]{1,1024}$")',
        r'_SOURCE_IDENTITY = re.compile(r"[A-Za-z0-9+=,.@_-]{2,64}")',
        r'_PREFIX = re.compile(r"[A-Za-z0-9_+=,.@-]{0,32}", re.ASCII)',
        r'P = {"AllowedPattern": "^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256})?$"}',
        r'ACCOUNT = re.compile(r"\d{12}")',
        r'm = re.fullmatch(rf"arn:({p}):iam::([0-9]{{12}}):(role|user)/({n})", value)',
    ],
)
def test_the_scan_finds_each_kind_of_pattern_it_forbids(line: str) -> None:
    assert identifier_patterns(line + "\n") != []


def test_the_scan_leaves_text_and_patterns_built_from_the_definitions_alone() -> None:
    source = (
        'M = "--role must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"\n'
        'A = f"arn:{partition}:iam::{account}:role/{name}"\n'
        'P = re.compile(rf"^{SESSION_NAME}$")\n'
        'T = f"^({SNS_TOPIC})?$"\n'
        'def f():\n    """A `\\\\d` would match full-width digits: arn:aws:iam::[0-9]{12}."""\n'
    )
    assert identifier_patterns(source) == []


# --- lookalikes, wherever an identifier is taken ----------------------------------------------------

ACCOUNT = "111111111111"
LOOKALIKES = {
    "full-width digits": "１１１１１１１１１１１１",
    "Arabic-Indic digits": "١١١١١١١١١١١١",
    "Devanagari digits": "११११११११११११",
    "mathematical digits": "𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏",
}
NAME_LOOKALIKES = {
    "KELVIN SIGN": "\u212aate",
    "full-width letters": "ｊｅｎｋｉｎｓ",
    "Cyrillic a": "jenkins-\u0430gent",
    "dotless i": "jenk\u0131ns",
    "long s": "\u017fample",
    "combining accent": "jenkins\u0301",
    "trailing newline": "jenkins\n",
}


def _bad_arns(kind: str) -> dict[str, str]:
    arns = {label: f"arn:aws:iam::{digits}:{kind}/jenkins" for label, digits in LOOKALIKES.items()}
    arns |= {label: f"arn:aws:iam::{ACCOUNT}:{kind}/{name}" for label, name in NAME_LOOKALIKES.items()}
    arns["Cyrillic partition"] = f"arn:\u0430ws:iam::{ACCOUNT}:{kind}/jenkins"
    arns["full-width colon"] = f"arn:aws:iam::{ACCOUNT}\uff1a{kind}/jenkins"
    return arns


BAD_CALLERS = _bad_arns("user")
BAD_ROLES = _bad_arns("role")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer"


@pytest.mark.parametrize("caller", BAD_CALLERS.values(), ids=BAD_CALLERS.keys())
def test_revoke_refuses_a_lookalike_caller_before_any_aws_call(caller: str, capsys: Any) -> None:
    assert main(["revoke", "--role", ROLE, "--caller", caller]) == 2
    assert "--caller must be an IAM role or user ARN" in capsys.readouterr().err


@pytest.mark.parametrize("role", BAD_ROLES.values(), ids=BAD_ROLES.keys())
def test_revoke_refuses_a_lookalike_role(role: str, capsys: Any) -> None:
    assert main(["revoke", "--role", role, "--all-before-now"]) == 2
    assert "--role must be an IAM role ARN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--caller", v) for v in BAD_CALLERS.values()] + [("--role", v) for v in BAD_ROLES.values()],
    ids=[f"caller {k}" for k in BAD_CALLERS] + [f"role {k}" for k in BAD_ROLES],
)
def test_audit_refuses_a_lookalike_caller_or_role(
    option: str, value: str, tmp_path: Path, capsys: Any
) -> None:
    log = tmp_path / "api.log"
    log.write_text("")
    assert main(["audit", "--log", str(log), option, value]) == 2
    assert f"{option} must be" in capsys.readouterr().err


def test_a_session_arn_with_lookalike_digits_is_refused_too(capsys: Any) -> None:
    session = f"arn:aws:sts::{LOOKALIKES['full-width digits']}:assumed-role/jenkins-agent/i-0abc"
    assert main(["revoke", "--role", ROLE, "--caller", session]) == 2
    assert "--caller must be an IAM role or user ARN" in capsys.readouterr().err


@pytest.mark.parametrize("role", [*BAD_ROLES.values(), f"arn:aws-iso:iam::{ACCOUNT}:role/deployer"])
def test_configure_refuses_a_lookalike_role_from_the_server(role: str) -> None:
    from stsvend.client.configure import profiles_for
    from stsvend.errors import CommandError

    answer = {"Roles": [{"RoleArn": ROLE, "MaxDurationSeconds": 3600}, {"RoleArn": role}]}
    with pytest.raises(CommandError, match="is not a valid IAM role ARN"):
        profiles_for(answer, "https://example.invalid/api", "us-east-1", "", ["stsvend"])


@pytest.mark.parametrize("principal", BAD_CALLERS.values(), ids=BAD_CALLERS.keys())
def test_grants_refuse_a_lookalike_principal(principal: str) -> None:
    from chalicelib.grants import GrantError, parse_grant

    with pytest.raises(GrantError):
        parse_grant({"principal": principal, "roles": [{"role_arn": ROLE}]}, resolve_policy=lambda name: None)


@pytest.mark.parametrize("role", BAD_ROLES.values(), ids=BAD_ROLES.keys())
def test_grants_refuse_a_lookalike_role(role: str) -> None:
    from chalicelib.grants import GrantError, parse_grant

    raw = {"principal": f"arn:aws:iam::{ACCOUNT}:user/jenkins", "roles": [{"role_arn": role}]}
    with pytest.raises(GrantError):
        parse_grant(raw, resolve_policy=lambda name: None)


def test_a_grants_file_refuses_a_lookalike_policy_arn(tmp_path: Path) -> None:
    from stsvend.checkout.grants_file import load_grants_file
    from stsvend.checkout.model import GrantError

    policy = f"arn:aws:iam::{LOOKALIKES['full-width digits']}:policy/x"
    grant = {
        "principal": f"arn:aws:iam::{ACCOUNT}:user/jenkins",
        "roles": [{"role_arn": ROLE, "policy_arns": [policy]}],
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([grant], ensure_ascii=False), encoding="utf-8")
    with pytest.raises(GrantError):
        load_grants_file(path, tmp_path)


FOLDED = {
    "\u212aate": "kate",
    "ｊｅｎｋｉｎｓ": "jenkins",
    "jenkins-\u0430gent": "jenkins-agent",
    "jenk\u0131ns": "jenkins",
    "\u017fample": "sample",
}


@pytest.mark.parametrize(("lookalike", "name"), FOLDED.items(), ids=FOLDED.values())
def test_a_grant_never_matches_a_lookalike_of_its_principal(lookalike: str, name: str) -> None:
    """Matching ignores ASCII case only: Unicode case folding makes KELVIN SIGN a k; nor does a pattern
    match a name IAM could not have issued (the audit log's lines are read, not trusted)."""
    from chalicelib.arns import principal_matches

    caller = f"arn:aws:iam::{ACCOUNT}:user/{lookalike}"
    for principal in (f"arn:aws:iam::{ACCOUNT}:user/{name}", f"arn:aws:iam::{ACCOUNT}:user/{name.upper()}"):
        assert not principal_matches(principal, caller)
    assert not principal_matches(f"arn:aws:iam::{ACCOUNT}:user/*", caller)
    assert principal_matches(
        f"arn:aws:iam::{ACCOUNT}:user/{name.upper()}", f"arn:aws:iam::{ACCOUNT}:user/{name}"
    )
