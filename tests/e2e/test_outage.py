"""With the emulator down, the API answers 503 ServiceUnavailable with Retry-After and vends
nothing. A stack of its own: stopping the session's emulator would end it for every other test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack
from tests.e2e.conftest import Api, start_stack, stop_stack

pytestmark = pytest.mark.e2e

READ_ONLY = "arn:aws:iam::111111111111:role/read-only"


@pytest.fixture(scope="module")
def doomed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_stack(tmp_path_factory.mktemp("outage"), record_requests=False)
    try:
        yield stack
    finally:
        stop_stack(stack)


def test_an_unreachable_emulator_gives_503_and_no_credentials(doomed_stack: LocalStack) -> None:
    api = Api(doomed_stack.state)
    # Signed while the emulator still runs (signing is offline), for the request sent after.
    proof = api.proof("sample-app", "POST", "/credentials", {"role_arn": READ_ONLY})
    assert api.credentials("sample-app", READ_ONLY).status == 200

    doomed_stack.emulator.stop()
    answer = api.credentials("sample-app", READ_ONLY, proof=proof)

    assert (answer.status, answer.code) == (503, "ServiceUnavailable"), answer.body
    assert int(answer.headers["Retry-After"]) > 0
    assert set(answer.body) == {"Code", "Message", "RequestId"}
    audit = [
        json.loads(line) for line in Path(doomed_stack.state.logs["api"]).read_text().splitlines()
        if answer.body["RequestId"] in line and line.startswith("{")
    ]
    assert [(a["event"], a["code"]) for a in audit if "event" in a] == [
        ("credentials.denied", "ServiceUnavailable")
    ]
