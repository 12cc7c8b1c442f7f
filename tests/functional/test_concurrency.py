"""`chalice local` serves requests on threads over one app object; each request must still be
decided on its own caller and body, never on another thread's."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

import app as app_module
from chalicelib.service import Stsvend
from tests.functional.conftest import _Context, api_event, iam_identity
from tests.functional.fakes import fake_service


@pytest.fixture
def service(serve: Callable[[Stsvend], None]) -> None:
    svc, _ = fake_service([])
    serve(svc)


def test_concurrent_requests_keep_their_own_caller(service: None) -> None:
    mismatches: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        arn = f"arn:aws:sts::111111111111:assumed-role/role-{n}/session-{n}"
        identity = iam_identity(arn=arn, user_id=f"AROAWORKER{n:010d}:session-{n}")
        try:
            barrier.wait()
            for _ in range(150):
                result = app_module.app(api_event("GET", "/whoami", None, identity), _Context())
                seen = json.loads(result["body"]).get("Arn", result["body"])
                if seen != arn:
                    mismatches.append((arn, seen))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert mismatches == []
