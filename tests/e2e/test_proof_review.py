"""Findings of the review of the `sts-proof` identity mode, over real HTTP against the local stack
(`chalice local` and the emulator with IAM authentication on)."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stsvend.client.signing import GET_CALLER_IDENTITY_BODY, request_binding
from stsvend.local.process import free_port
from stsvend.local.stack import LocalState
from tests.e2e.conftest import Api, run_checkout_command

pytestmark = pytest.mark.e2e


def _proof_with_content_type(api: Api, identity: str, content_type: str) -> str:
    """A genuine proof by `identity` for `GET /whoami`, whose signed Content-Type is `content-type`."""
    state = api.state
    me = state.identities[identity]
    url = state.emulator_url + "/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=GET_CALLER_IDENTITY_BODY.encode(),
        headers={
            "Content-Type": content_type,
            "X-Stsvend-Server-Id": api.server_id,
            "X-Stsvend-Request": request_binding("GET", "/whoami", b""),
        },
    )
    SigV4Auth(Credentials(me.access_key_id, me.secret_access_key), "sts", state.region).add_auth(request)
    headers = dict(request.headers.items())
    proof = {"method": "POST", "url": url, "headers": headers, "body": GET_CALLER_IDENTITY_BODY}
    return base64.b64encode(json.dumps(proof).encode()).decode()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-amz-json-1.1"])
def test_a_proof_signing_a_json_content_type_is_401_not_an_outage(api: Api, content_type: str) -> None:
    answer = api.call("GET", "/whoami", proof=_proof_with_content_type(api, "sample-app", content_type))
    assert answer.status == 401, answer.body
    assert answer.code == "NotAuthenticated"
    assert "Content-Type" in answer.body["Message"]


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
