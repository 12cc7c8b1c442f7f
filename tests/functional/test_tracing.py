"""With X-Ray tracing on (dev, prod), no trace segment carries a vended secret key or session token.
Tracing is decided when app.py is imported, so the check runs in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys
from aws_xray_sdk.core import xray_recorder

segments = []

class Emitter:
    ip, port = "127.0.0.1", 2000

    def send_entity(self, entity):
        segments.append(entity.serialize())

    def set_daemon_address(self, address):
        pass

xray_recorder.configure(emitter=Emitter(), streaming_threshold=0)

import app as app_module
from tests.functional.conftest import _Context, api_event, iam_identity
from tests.functional.fakes import fake_service

grant = {"account_id": "111111111111", "principal": "arn:aws:iam::111111111111:role/jenkins-agent",
         "roles": [{"role_arn": "arn:aws:iam::222222222222:role/deployer"}]}
app_module.use_service(fake_service([grant])[0])
event = api_event("POST", "/credentials", json.dumps({"role_arn": "arn:aws:iam::222222222222:role/deployer"}),
                  iam_identity())
result = app_module.app(event, _Context())
body = json.loads(result["body"])
print(json.dumps({"status": result["statusCode"], "tracing": "aws_xray_sdk.core" in sys.modules,
                  "segments": segments, "secret": body.get("SecretAccessKey"),
                  "token": body.get("SessionToken")}))
"""


def test_traces_never_hold_vended_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(ROOT),  # as in Lambda: powertools traces only there
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["tracing"] is True
    assert report["segments"], "no trace segment was emitted: the check would see nothing"
    emitted = "\n".join(report["segments"])
    assert '"name": "## ' in emitted  # the handler's subsegment, where a response would be kept
    assert report["secret"] not in emitted
    assert report["token"] not in emitted
