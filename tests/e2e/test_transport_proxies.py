"""The command calls the local stack's API directly, whatever proxy the environment names (over real
HTTP against the local stack; tests/functional/test_transport_proxies.py has the transport's rule)."""

from __future__ import annotations

import json

import pytest

from stsvend.local.process import free_port
from stsvend.local.stack import LocalState
from tests.e2e.conftest import run_checkout_command

pytestmark = pytest.mark.e2e


def test_the_command_calls_the_local_api_directly_whatever_proxy_the_environment_names(
    state: LocalState,
) -> None:
    # Nothing listens on the proxy's port: had the command used it, it would fail (exit 4).
    proxy = f"http://127.0.0.1:{free_port()}"
    env = {
        **state.environment("sample-app"),
        "http_proxy": proxy,
        "HTTP_PROXY": proxy,
        "no_proxy": "",
        "NO_PROXY": "",
    }
    result = run_checkout_command("-m", "stsvend.cli", "whoami", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == "arn:aws:iam::111111111111:user/sample-app"
