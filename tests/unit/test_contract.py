"""The API's contract holds on both sides: the server's (`chalicelib/contract.py`) is what the app
registers, raises and audits; the command's (`stsvend/contract.py`) is the same, and what
`docs/openapi.json`, `stsvend audit`, the alarms and the exit statuses are built from.

A new route or error code starts in the two contract modules; each failure below names what else is
missing (docs/architecture.md, "To change X, edit Y")."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
from chalice.app import IAMAuthorizer

import app as app_module
import chalicelib
from chalicelib import contract as server
from chalicelib.errors import StsvendError
from stsvend import contract as command
from stsvend.checkout.openapi import PUBLISHED, build
from stsvend.errors import EXIT_DENIED, EXIT_OTHER, EXIT_UNAVAILABLE, EXIT_USAGE
from stsvend.ops import common, definitions

ROOT = Path(__file__).resolve().parents[2]


def app_routes() -> dict[tuple[str, str], tuple[str, bool]]:
    """(method, path) -> (view, behind IAM auth), as Chalice registered them."""
    return {
        (method, path): (entry.view_name, isinstance(entry.authorizer, IAMAuthorizer))
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
    }


def server_errors() -> dict[str, int]:
    """Every error class the server can raise (all of chalicelib imported): code -> HTTP status."""
    for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        importlib.import_module(module.name)
    found: dict[str, int] = {}
    pending = [StsvendError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls.status
        pending.extend(cls.__subclasses__())
    return found


# --- routes ---------------------------------------------------------------------------------------


def test_the_app_registers_the_routes_of_the_servers_contract() -> None:
    declared = {(r.method, r.path): (r.view, r.auth == server.IAM) for r in server.ROUTES}
    registered = app_routes()
    assert registered.keys() - declared.keys() == set(), "routes of app.py missing in chalicelib/contract.py"
    assert declared.keys() - registered.keys() == set(), "routes of chalicelib/contract.py missing in app.py"
    assert registered == declared, "a route's view or IAM authorizer differs from chalicelib/contract.py"
    assert {r.auth for r in server.ROUTES} <= {server.IAM, server.OIDC_TOKEN, server.PUBLIC}


def test_the_commands_routes_are_the_servers() -> None:
    declared = {route[:5] for route in server.ROUTES}  # all but what the route is audited as
    assert set(command.ROUTES) == declared, "stsvend/contract.py ROUTES != chalicelib/contract.py ROUTES"
    assert (command.IAM, command.OIDC_TOKEN, command.PUBLIC) == (server.IAM, server.OIDC_TOKEN, server.PUBLIC)


def test_each_route_is_audited_as_a_decision_or_a_published_document() -> None:
    for route in server.ROUTES:
        if route.auth == server.PUBLIC:
            assert route.audited_as not in server.DECISIONS, route
        else:
            assert route.audited_as in server.DECISIONS, f"{route.path}: no audit events in DECISIONS"


def test_the_published_description_is_generated_from_the_contract() -> None:
    published = json.loads((ROOT / PUBLISHED).read_text(encoding="utf-8"))
    assert published == build(), "docs/openapi.json is stale: run make openapi"
    described = {(m.upper(), p) for p, operations in published["paths"].items() for m in operations}
    assert described == set(app_routes()), "docs/openapi.json describes other routes than app.py has"


# --- error codes ----------------------------------------------------------------------------------


def test_every_error_the_server_raises_is_in_its_contract_with_its_status() -> None:
    assert server_errors() == server.ERRORS, "chalicelib's error classes != chalicelib/contract.py ERRORS"
    assert server.ERRORS == {**server.DENIALS, **server.DOCUMENT_ERRORS}


def test_the_command_knows_every_error_code_with_its_status() -> None:
    statuses = {code: status for code, (status, _) in command.ERRORS.items()}
    assert statuses == server.ERRORS, "stsvend/contract.py ERRORS != chalicelib/contract.py ERRORS"
    assert set(command.DENIAL_CODES) == set(server.DENIALS)
    assert common.DENIAL_CODES == command.DENIAL_CODES  # what `stsvend audit --code` takes


# A code whose exit status is not its HTTP status's: an older command that does not know the code
# exits otherwise for it, so each is a decision, listed here.
EXIT_BY_CODE_NOT_STATUS = {"AssumeRoleDenied"}  # a 502, but the target role refused: a denial


@pytest.mark.parametrize("code", sorted(command.ERRORS))
def test_each_error_code_has_the_exit_status_the_command_documents(code: str) -> None:
    status, exit_status = command.ERRORS[code]
    assert command.exit_status(status, code) == exit_status
    # docs/client.md: 2 for a bad request, 3 when not authenticated or denied, 4 when the
    # service is unavailable, 1 otherwise.
    by_status = {400: EXIT_USAGE, 413: EXIT_USAGE, 401: EXIT_DENIED, 403: EXIT_DENIED, 503: EXIT_UNAVAILABLE}
    if code in EXIT_BY_CODE_NOT_STATUS:
        assert command.exit_status(status, None) != exit_status
    else:
        assert exit_status == by_status.get(status, command.exit_status(status, None))
        assert command.exit_status(status, None) == exit_status  # an unknown code exits alike


def test_an_answer_that_is_not_the_services_exits_by_its_status() -> None:
    """API Gateway's and proxies' own answers, and a known code with another status."""
    assert command.exit_status(403, None) == EXIT_DENIED  # API Gateway: Missing Authentication Token
    assert command.exit_status(502, None) == EXIT_UNAVAILABLE
    assert command.exit_status(504, "AssumeRoleDenied") == EXIT_UNAVAILABLE
    assert command.exit_status(429, "Throttled") == EXIT_UNAVAILABLE
    assert command.exit_status(500, "InvalidRequest") == EXIT_OTHER


def test_the_api_reference_lists_every_denial_code_with_its_status() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {code: int(status) for status, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", text, re.M)}
    assert documented == server.DENIALS, "docs/api.md's error table != chalicelib/contract.py DENIALS"


# --- what ops reads: denial codes, events, metrics ----------------------------------------------


def test_every_denial_code_has_its_alarm_decision() -> None:
    assert set(definitions.DENIAL_ALARMS) == set(server.DENIALS), (
        "stsvend/ops/definitions.py DENIAL_ALARMS must say, for each denial code, its alarm or None"
    )
    by_code = {dict(a.dimensions).get("Code"): a for a in definitions.alarms(60)}
    for code, alarm in definitions.DENIAL_ALARMS.items():
        if alarm is None:
            assert code not in by_code
            continue
        made = by_code[code]
        assert (made.key, made.threshold) == alarm[:2]
        assert (made.namespace, made.metric) == (server.NAMESPACE, server.DENIED_METRIC)
        assert dict(made.dimensions) == {"Code": code, "service": server.SERVICE}


def test_the_events_the_function_writes_are_the_ones_ops_reads() -> None:
    assert set(command.AUDIT_EVENTS) == set(server.EVENTS)
    assert len(command.AUDIT_EVENTS) == len(server.EVENTS)
    assert command.PUBLISHED_EVENT == server.PUBLISHED
    assert (definitions.AUDIT_EVENTS, definitions.PUBLISHED_EVENT) == (
        command.AUDIT_EVENTS,
        command.PUBLISHED_EVENT,
    )


def test_the_metrics_the_function_writes_are_the_ones_ops_reads() -> None:
    names = ("NAMESPACE", "SERVICE", "VENDED_METRIC", "DENIED_METRIC")
    assert {n: getattr(command, n) for n in names} == {n: getattr(server, n) for n in names}
    assert (definitions.NAMESPACE, definitions.SERVICE) == (server.NAMESPACE, server.SERVICE)
    widgets = json.dumps(definitions.dashboard(definitions.alarms(60)))
    assert server.VENDED_METRIC in widgets and server.DENIED_METRIC in widgets
