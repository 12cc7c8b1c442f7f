"""The docs' SigV4 examples for other languages (docs/client.md), run as written: the curl
command and the JavaScript SDK v3 signer snippet sign a POST /credentials that a listener on loopback
receives, and botocore, recomputing the signature over what arrived, agrees with it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.functional.fake_api import ROOT, FakeApi, Received

REGION = "eu-west-1"
KEY = "ASIAREADMEEXAMPLE001"
SECRET = "readme-example-secret"
TOKEN = "readme-example-session-token"
ROLE = "arn:aws:iam::222222222222:role/deployer"


def readme_snippet(kind: str) -> str:
    """The one block marked `<!-- signed-request: KIND -->` in the README or a page of docs/ (its
    `<!-- run: ... -->` marker may follow on the next line)."""
    pattern = rf"<!-- signed-request: {kind} -->\n(?:<!-- run: \w+ -->\n)?```\w+\n(.*?)```"
    found = [
        match.group(1)
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for match in re.finditer(pattern, page.read_text(encoding="utf-8"), re.DOTALL)
    ]
    assert len(found) == 1, f"{len(found)} {kind} examples in README.md and docs/ (one expected)"
    return found[0]


def caller_env(api: FakeApi) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "STSVEND_API_URL": api.url,
    }


def assert_signed_for_execute_api(api: FakeApi, call: Received) -> None:
    lowered = {k.lower(): v for k, v in call.headers.items()}
    authorization = lowered["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/")
    assert f"/{REGION}/execute-api/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    request = AWSRequest(
        method=call.method, url=api.url + call.path, data=call.body,
        headers={name: lowered[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = lowered["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "execute-api", REGION)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert authorization.endswith(f"Signature={expected}")


def test_readme_curl_example_is_signed_for_execute_api(api: FakeApi) -> None:
    done = subprocess.run(["sh", "-c", readme_snippet("curl")], env=caller_env(api),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] == "ASIAVENDEDBYFAKEAPI1"
    [call] = api.calls("POST", "/credentials")
    assert json.loads(call.body) == {"role_arn": ROLE, "duration_seconds": 900}
    assert_signed_for_execute_api(api, call)


def test_readme_javascript_example_is_signed_for_execute_api(
    api: FakeApi, js_clients: Path
) -> None:
    # Evaluated from tests/js, so its imports resolve to the packages installed there.
    done = subprocess.run(["node", "--input-type=module", "--eval", readme_snippet("javascript")],
                          cwd=js_clients, env=caller_env(api), capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "200 ASIAVENDEDBYFAKEAPI1\n"
    [call] = api.calls("POST", "/credentials")
    assert json.loads(call.body) == {"role_arn": ROLE}
    assert_signed_for_execute_api(api, call)


@pytest.mark.parametrize("kind", ["curl", "javascript"])
def test_readme_examples_never_print_a_secret(kind: str) -> None:
    snippet = readme_snippet(kind)
    assert "SecretAccessKey" not in snippet and "SessionToken" not in snippet
