"""The classic STS sample application, with stsvend in the middle.

In the AWS STS sample, an application whose own identity may do nothing but sts:AssumeRole on a
`read-only` role fails to describe EC2 instances, assumes `read-only`, and then succeeds. Here the
application may not assume the role at all: it asks stsvend, which checks the application's grant
and assumes the role for it, with a session policy, session tags and a SourceIdentity naming the
application, and one audit line per decision.

Against the local stack (`make run` in another terminal; `make demo` runs this too):

    .venv/bin/python examples/sample_app.py [--config .stsvend/local.json]

Exits 0 when every step behaves as described, 1 when one does not.
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import ClientError
from stsvend_local import (
    DENIED,
    StepFailed,
    aws,
    instance_ids,
    load_config,
    own_keys,
    stsvend_credentials,
)


def run(config_path: str | None) -> None:
    config = load_config(config_path)
    me = config["identities"]["sample-app"]
    role = config["roles"]["read-only"]

    print(f"1. describe-instances as the application itself ({me['arn']})")
    try:
        ids = instance_ids(aws("ec2", config, own_keys(config, "sample-app")))
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code not in DENIED:
            raise StepFailed(f"expected AccessDenied, got {code}") from None
        print(f"   denied ({code}), as expected: its own identity may only prove who it is")
    else:
        raise StepFailed(f"its own identity could read EC2 ({len(ids)} instances)")

    print(f"2. ask stsvend for {role}")
    answer = stsvend_credentials(config, "sample-app", role)
    print(f"   vended {answer['AssumedRoleArn']}")
    print(f"   access key {answer['AccessKeyId']}, expires {answer['Expiration']},"
          f" source identity {answer['SourceIdentity']}")
    acting_as = aws("sts", config, answer).get_caller_identity()["Arn"]
    if acting_as != answer["AssumedRoleArn"]:
        raise StepFailed(f"the vended credentials act as {acting_as}")

    print("3. describe-instances with the vended credentials")
    try:
        ids = instance_ids(aws("ec2", config, answer))
    except ClientError as exc:
        raise StepFailed(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}") from None
    if not ids:
        raise StepFailed("allowed, but the account shows no instances")
    print(f"   allowed: {len(ids)} instances: {', '.join(ids)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the local stack's local.json (default:"
                        " $STSVEND_LOCAL_CONFIG, else .stsvend/local.json)")
    try:
        run(parser.parse_args(argv).config)
    except StepFailed as exc:
        print(f"   FAILED: {exc}")
        return 1
    print("The sample application behaved as described.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
