"""Refresh timing with real clients (issue 12 section 4): how often the AWS CLI v1 and a long-lived
boto3 client run stsvend, and how often stsvend vends, over two simulated credential lifetimes
(bench/spawns.py simulates the clock in every process; the refresh windows are the real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.spawns import CLI_CALLS, measure
from stsvend.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("client", "duration"), [("boto3", 3600), ("boto3", 900), ("aws-cli", 3600)])
def test_stsvend_vends_at_most_once_per_lifetime(
    stack: LocalStack, tmp_path: Path, client: str, duration: int
) -> None:
    figures = measure(stack.state, tmp_path, client, duration)
    # Two lifetimes: the first vend, then at most one as each lifetime nears its end.
    assert 2 <= figures["vends"] <= 3
    if client == "aws-cli":
        assert figures["spawns"] == CLI_CALLS  # one process per call, each served from the cache
    elif duration == 3600:
        # A call a minute for two hours: stsvend runs about once per lifetime, and vends each time.
        assert figures["calls"] == 120 and figures["spawns"] == figures["vends"]
    else:
        # botocore's fixed 15-minute window covers 900 s credentials from birth: a spawn per call.
        assert figures["spawns"] > figures["calls"]


def test_the_old_five_minute_window_made_a_long_lived_boto3_client_spawn_on_every_call(
    stack: LocalStack, tmp_path: Path
) -> None:
    before = measure(stack.state, tmp_path, "boto3", 3600, refresh_window=300)
    # Every call in botocore's last 15 minutes ran stsvend, which kept serving the old entry.
    assert before["spawns"] > 20 and before["vends"] <= 3
