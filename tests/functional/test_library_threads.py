"""The library (`stsvend.vend`, `stsvend.session`, `stsvend.botocore_session`) called from several
threads of one process, against the fake API of tests/functional/fake_api.py."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

import stsvend
from tests.functional.fake_api import (
    ROLE,
    FakeApi,
)

SLOW_PROCESS = """
import json, time
time.sleep(1.0)
print(json.dumps({"Version": 1, "AccessKeyId": "AKIASLOWPROCESS00001",
                  "SecretAccessKey": "slow-process-secret"}))
"""


def test_library_vends_from_two_threads_whose_ambient_credentials_load_at_once(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker variable set while ambient credentials load was deleted by whichever thread
    finished first: the other one's `del` raised KeyError out of the library."""
    script = tmp_path / "slow_process.py"
    script.write_text(SLOW_PROCESS)
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script}\n")
    for name in list(os.environ):
        if name.startswith(("AWS_", "STSVEND_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    outcomes: list[object] = []

    def vend() -> None:
        try:
            outcomes.append(stsvend.vend(ROLE, api_url=api.url).access_key_id)
        except Exception as exc:  # noqa: BLE001 - what the thread met is the assertion
            outcomes.append(exc)

    first = threading.Thread(target=vend)
    second = threading.Thread(target=vend)
    first.start()
    time.sleep(0.3)  # the second starts loading while the first's credential_process runs
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)

    assert outcomes == ["ASIAVENDEDBYFAKEAPI1", "ASIAVENDEDBYFAKEAPI1"]
    assert "STSVEND_RESOLVING_CREDENTIALS" not in os.environ
