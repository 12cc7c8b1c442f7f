"""The command package's rooms and what each may import (docs/architecture.md), read from the source:
every import statement, at module level or in a function body, counts."""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "stsvend"
# room -> the stsvend rooms (and server packages) its modules may import; "" is the top level
# (stsvend/__init__.py, cli.py, errors.py, constants.py (the version and time format: a leaf every
# module imports them from), terminal.py (the one rule for printing untrusted text),
# and arns.py: the server's identifiers, chalicelib/arns.py
# itself through a link, which imports only the standard library).
# "aws" is stsvend/aws.py, at the top level but a room of its own: the one place the checkout,
# operator and local-stack commands get AWS sessions, clients and the translation of AWS's errors.
# The client may not import it (it signs its own requests and must not load botocore on the cache hit).
ALLOWED = {
    # cli.py registers the parsers of the ops commands through stsvend.ops.register (only when it
    # builds the parsers: the cache-hit path loads neither argparse nor stsvend.ops).
    "": {"", "errors", "ops"},
    "client": {"", "errors", "client"},
    "checkout": {"", "errors", "aws", "checkout", "chalicelib", "app"},
    "local": {"", "errors", "aws", "checkout", "client", "local"},
    "ops": {"", "errors", "aws", "checkout", "ops"},
}
# Modules that build botocore or boto3 sessions and clients: stsvend/aws.py for the commands, and the
# client's own (its library hands out sessions with vended credentials; `doctor` and the signer read
# the caller's source credentials).
SESSION_MAKERS = {"aws.py", "client/library.py", "client/doctor.py", "client/signing.py"}
# stsvend/__init__.py also names the library (`stsvend.session`, ...), imported on first use; cli.py
# opens the checkout a command's --root names before importing the command (never on a cache hit:
# `credentials` has no --root).
ALLOWED_IN_FILE = {"__init__.py": {"client"}, "cli.py": {"checkout"}}
# The server's modules enter the command through these two files only: the grant model, and the
# OpenAPI generator (the service's request limits).
SERVER_GATEWAYS = {"checkout/model.py", "checkout/openapi.py"}


# The top level's modules (and the names stsvend/__init__.py defines).
TOP_LEVEL = {p.stem for p in PACKAGE.glob("*.py")} | {"__version__", "TIMESTAMP_FORMAT"}


def room_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else ""


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def target_room(name: str) -> str | None:
    """The room an imported name belongs to, or None for the standard library and third parties."""
    parts = name.split(".")
    if parts[0] in ("chalicelib", "app"):
        return parts[0]
    if parts[0] != "stsvend":
        return None
    if len(parts) == 1 or parts[1] in TOP_LEVEL:
        return {"errors": "errors", "aws": "aws"}.get(parts[1] if len(parts) > 1 else "", "")
    return parts[1]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_what_its_room_may(path: Path) -> None:
    room = room_of(path)
    rooms = {name: target_room(name) for name in imported(path)}
    allowed = ALLOWED[room] | ALLOWED_IN_FILE.get(str(path.relative_to(PACKAGE)), set())
    forbidden = sorted(
        name for name, target in rooms.items() if target is not None and target not in allowed
    )
    assert forbidden == []
    server = sorted(name for name, target in rooms.items() if target in ("chalicelib", "app"))
    if str(path.relative_to(PACKAGE)) not in SERVER_GATEWAYS:
        assert server == []


def _builds_sessions(path: Path) -> list[str]:
    """What in a module makes a botocore or boto3 session or client itself: an import of
    botocore.session, botocore.config or boto3."""
    return sorted(
        name for name in imported(path)
        if name.split(".")[0] == "boto3" or name.startswith(("botocore.session", "botocore.config"))
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_aws_module_builds_sessions(path: Path) -> None:
    """One retry configuration and one region rule: no wing of the command makes its own sessions
    (tests/unit/test_aws_errors_and_retries.py holds what stsvend/aws.py makes)."""
    if str(path.relative_to(PACKAGE)) not in SESSION_MAKERS:
        assert _builds_sessions(path) == []


def test_the_session_rule_catches_a_session_made_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    import botocore.session\n    return botocore.session.Session()\n")
    assert _builds_sessions(module) == ["botocore.session"]
    module.write_text("from botocore.config import Config\nimport boto3.session\n")
    assert _builds_sessions(module) == ["boto3.session", "botocore.config", "botocore.config.Config"]


def test_the_client_may_not_import_the_aws_module(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from stsvend import aws\n    from stsvend.aws import session\n")
    assert {target_room(n) for n in imported(module)} == {"", "aws"}
    assert "aws" not in ALLOWED["client"]


def test_the_rules_see_every_room() -> None:
    assert {room_of(path) for path in MODULES} == set(ALLOWED)


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "def f():\n    from stsvend.local.stack import LocalStack\n    import chalicelib.grants\n"
    )
    names = imported(module)
    assert {target_room(n) for n in names} == {"local", "chalicelib"}
    assert not {target_room(n) for n in names} <= ALLOWED["client"]


def test_the_cache_hit_path_loads_neither_botocore_nor_argparse() -> None:
    """What `stsvend credentials` imports before it knows whether the cache has the answer: no
    third-party code, and none of the standard library's heavier modules (a hit runs on every AWS
    CLI call; stsvend.client.plain stands in for them). `-S`: the project's editable install loads
    some of them at start-up, which an installed stsvend does not."""
    import subprocess
    import sys

    probe = (
        "import sys; import stsvend.cli, stsvend.client.commands;"
        " print(' '.join(sorted(m for m in ('botocore', 'argparse', 'dataclasses', 'tempfile',"
        " 'typing', 'chalicelib', 'stsvend.checkout', 'stsvend.local', 'stsvend.ops', 'json', 're',"
        " 'enum', 'collections', 'functools', 'urllib.parse', 'ipaddress', 'datetime', 'pathlib',"
        " 'hashlib', 'contextlib', 'shlex', 'importlib') if m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True, cwd=SERVER
    ).stdout
    assert loaded.split() == []


SERVER = Path(__file__).resolve().parents[2]
SERVER_MODULES = sorted((SERVER / "chalicelib").rglob("*.py")) + [SERVER / "app.py"]
# What the deployed function has: the standard library, its own code, requirements.txt and
# requirements-vendor.txt (with what they bring), and the Lambda runtime's botocore with its urllib3.
SERVER_MAY_IMPORT = {"chalicelib", "chalice", "aws_lambda_powertools", "aws_xray_sdk", "botocore", "urllib3"}
# The OIDC route's JOSE library (requirements.txt), in the one module that uses it, which only that
# route imports (chalicelib/oidc/signature.py).
OIDC_MAY_IMPORT = {"jwt"}


@pytest.mark.parametrize("path", SERVER_MODULES, ids=lambda p: str(p.relative_to(SERVER)))
def test_the_server_imports_only_what_the_deployed_package_holds(path: Path) -> None:
    """app.py and chalicelib/ are all of stsvend that Chalice packages: an import of the command,
    the tests or boto3's resource layer would fail only once deployed."""
    third_party = {
        name.split(".")[0] for name in imported(path) if name.split(".")[0] not in sys.stdlib_module_names
    }
    oidc_route = path.name == "signature.py" and path.parent.name == "oidc"
    allowed = SERVER_MAY_IMPORT | (OIDC_MAY_IMPORT if oidc_route else set())
    assert third_party <= allowed, sorted(third_party - allowed)


TIMING = re.compile(
    r"\b[0-9]+(?:\.[0-9]+)?\s?(?:ms|µs|us|ns|milliseconds|microseconds)\b|\b[0-9.]+x (?:faster|slower)\b"
)
COMMAND_ROOMS = ("checkout", "local", "ops")


def _comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                found.append((node.body[0].lineno, docstring))
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if room_of(p) in COMMAND_ROOMS] + [PACKAGE / "aws.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_timing_figures_in_the_command_rooms_comments(path: Path) -> None:
    """Timings go stale: they live in bench/ and its README; a comment gives the reason in words."""
    assert [(line, text) for line, text in _comments_and_docstrings(path) if TIMING.search(text)] == []


def test_the_timing_rule_catches_a_figure(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        '"""Fast."""\n\n\ndef f():\n    """Saves 0.5 ms a call."""\n    return 1  # 3x faster\n'
    )
    assert sorted(line for line, text in _comments_and_docstrings(module) if TIMING.search(text)) == [5, 6]


def test_every_command_names_a_handler_that_exists() -> None:
    """stsvend/cli.py names each command's module and function (the operator commands' too, which
    stsvend/ops registers parsers for): every parser has one, and it resolves."""
    import importlib

    from stsvend import cli

    parser = cli.build_parser(False)
    commands = {
        name
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name in getattr(action, "choices", {}) or {}
    }
    assert commands == set(cli._HANDLERS)
    for module, function in cli._HANDLERS.values():
        assert callable(getattr(importlib.import_module(module), function)), (module, function)
