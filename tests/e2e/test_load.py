"""The bounded load test at a size `make test` can afford (`make loadtest` runs 2,000 vends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack
from tests.conftest import record_output, record_vended
from tests.e2e.loadtest import ROOT, leaked_secrets, run_load


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack.on_free_ports(ROOT, tmp_path, record_requests=True)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        for log in (stack.api_log, stack.api_errors_log):
            record_output(log.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.e2e
def test_every_vend_under_load_is_audited_once_and_sent_to_sts_once(own_stack: LocalStack) -> None:
    report = run_load(own_stack, vends=240, clients=8, time_cap=120)
    for secret_pair in zip(report.secrets[::2], report.secrets[1::2], strict=True):
        record_vended({"SecretAccessKey": secret_pair[0], "SessionToken": secret_pair[1]})

    summary = report.summary()
    assert summary["errors"] == {}
    assert summary["answered"] == 240
    assert set(report.audited) == set(report.answered)
    assert set(report.sts_requests) == set(report.answered)
    assert summary["audit_vended_lines"] == summary["sts_assume_role_requests"] == 240
    assert report.balanced
    assert leaked_secrets(own_stack, report) == 0
