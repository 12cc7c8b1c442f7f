"""SAM's own transform (aws-sam-translator, what CloudFormation's `AWS::Serverless-2016-10-31` runs),
shared by the packaging tests and the rehearsal's emulator (tests/deploy_emulator.py)."""

from __future__ import annotations

import json
import os
from typing import Any


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """`template` (left as it is) expanded as CloudFormation expands a SAM template. The translator
    takes the region of its pseudo parameters from the environment; the expanded template names the
    stack's own region with `${AWS::Region}`."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        expanded: dict[str, Any] = transform(json.loads(json.dumps(template)), {}, NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return expanded
