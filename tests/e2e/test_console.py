"""`stsvend console` end to end on the local stack: credentials vended (and audited) by the API, a
sign-in token from the emulator's federation stand-in, which checks the session with the emulator,
and the printed URL accepted by the stand-in's login, or refused once the session is revoked
(`stsvend revoke`). The session token is never printed: only the sign-in URL, as asked."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stsvend.local.seed import LONG_RUNNING_ROLE, READ_ONLY_ROLE
from stsvend.local.stack import LocalStack, LocalState
from stsvend.ops.revoke import POLICY_NAME
from tests.e2e.conftest import aws, own_keys, run_checkout_command

pytestmark = pytest.mark.e2e
SAMPLE_APP = "arn:aws:iam::111111111111:user/sample-app"


def stsvend(state: LocalState, stack: LocalStack, *argv: str, tmp: Path, identity: str = "sample-app") -> Any:
    env = {
        **state.environment(identity),
        "STSVEND_LOCAL_DIR": str(stack.state_dir),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "BROWSER": "false",
    }
    return run_checkout_command("-m", "stsvend.cli", *argv, env=env)


def open_url(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def audit_vends(stack: LocalStack) -> list[dict[str, Any]]:
    lines = stack.api_log.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{") and '"event"' in line]
    return [r for r in records if r.get("event") == "credentials.vended"]


def test_a_console_url_for_a_twelve_hour_session(
    stack: LocalStack, state: LocalState, tmp_path: Path
) -> None:
    done = stsvend(
        state, stack, "console", "--role", LONG_RUNNING_ROLE, "--duration", "43200", "--print", tmp=tmp_path
    )
    assert done.returncode == 0, done.stderr
    (url,) = done.stdout.splitlines()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith(f"{state.emulator_url}/federation?")
    assert set(query) == {"Action", "Issuer", "Destination", "SigninToken"} and query["Action"] == "login"
    assert "sessionToken" not in done.stdout + done.stderr and "SessionToken" not in done.stdout + done.stderr
    vended = audit_vends(stack)[-1]
    assert vended["role_arn"] == LONG_RUNNING_ROLE and vended["vending_mode"] == "web-identity"
    assert vended["role_session_name"].endswith("-console")
    status, page = open_url(url)
    assert status == 200, page
    until = datetime.strptime(page.split(" until ")[1].strip(), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    assert until - datetime.now(timezone.utc) > timedelta(hours=11)  # SessionDuration was sent
    assert LONG_RUNNING_ROLE in page


def test_a_chained_session_gets_its_hour_without_session_duration(
    stack: LocalStack, state: LocalState, tmp_path: Path
) -> None:
    done = stsvend(state, stack, "console", "--role", READ_ONLY_ROLE, "--print", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    status, page = open_url(done.stdout.strip())
    assert status == 200 and READ_ONLY_ROLE in page
    until = datetime.strptime(page.split(" until ")[1].strip(), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    assert until - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_a_revoked_session_is_refused(stack: LocalStack, state: LocalState, tmp_path: Path) -> None:
    done = stsvend(state, stack, "console", "--role", LONG_RUNNING_ROLE, "--print", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    request_id = audit_vends(stack)[-1]["request_id"]
    iam = aws(state, "iam", own_keys(state, "admin"))
    try:
        revoke = stsvend(
            state,
            stack,
            "revoke",
            "--stage",
            "local",
            "--role",
            LONG_RUNNING_ROLE,
            "--request-id",
            request_id,
            "--apply",
            tmp=tmp_path,
            identity="admin",
        )
        assert revoke.returncode == 0, revoke.stderr
        status, page = open_url(done.stdout.strip())
        assert status == 403 and "revoked" in page
        # Another session of the same role, vended after: not revoked, its URL works.
        again = stsvend(state, stack, "console", "--role", LONG_RUNNING_ROLE, "--print", tmp=tmp_path)
        assert again.returncode == 0, again.stderr
        assert open_url(again.stdout.strip())[0] == 200
    finally:
        for name in iam.list_role_policies(RoleName="long-running")["PolicyNames"]:
            if name == POLICY_NAME or name.startswith(POLICY_NAME + "."):
                iam.delete_role_policy(RoleName="long-running", PolicyName=name)


def test_a_sign_in_token_for_keys_that_are_not_a_session_is_refused(state: LocalState) -> None:
    me = own_keys(state, "sample-app")
    session = json.dumps(
        {"sessionId": me["AccessKeyId"], "sessionKey": me["SecretAccessKey"], "sessionToken": "x"}
    )
    query = urllib.parse.urlencode({"Action": "getSigninToken", "Session": session})
    status, _ = open_url(f"{state.emulator_url}/federation?{query}")
    assert status == 400
    forged = urllib.parse.urlencode(
        {
            "Action": "login",
            "Issuer": "x",
            "SigninToken": "made-up",
            "Destination": "https://console.aws.amazon.com/",
        }
    )
    assert open_url(f"{state.emulator_url}/federation?{forged}")[0] == 400
