"""Jenkins in the infrastructure account deploys to the development account, through stsvend.

The classic setup gives the Jenkins agent's role sts:AssumeRole on a `deployer` role in the other
account. Here Jenkins asks stsvend instead: its grant allows `deployer` in 222222222222 and the
session tags `build-id` and `job-name`, so every action of the vended session is attributable to
the build that asked (CloudTrail shows the tags and the SourceIdentity `jenkins`). The role's
trust policy requires stsvend's external id, which only the service knows.

Against the local stack (`make run` in another terminal; `make demo` runs this too):

    .venv/bin/python examples/jenkins_cross_account.py [--config .stsvend/local.json]

Jenkins sets BUILD_ID and JOB_NAME for its jobs; they are used when set. Exits 0 when every step
behaves as described, 1 when one does not.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from botocore.exceptions import ClientError
from stsvend_local import StepFailed, aws, instance_ids, load_config, stsvend_credentials

DEV_ACCOUNT = "222222222222"


def run(config_path: str | None, build_id: str, job_name: str) -> None:
    config = load_config(config_path)
    role = config["roles"]["deployer"]

    print(f"1. {config['identities']['jenkins']['arn']} asks stsvend for {role}"
          f" (build-id={build_id}, job-name={job_name})")
    answer = stsvend_credentials(
        config, "jenkins", role, "--tag", f"build-id={build_id}", "--tag", f"job-name={job_name}",
        "--session-name", f"build-{build_id}",
    )
    print(f"   vended {answer['AssumedRoleArn']}, expires {answer['Expiration']}")
    identity = aws("sts", config, answer).get_caller_identity()
    if identity["Account"] != DEV_ACCOUNT or identity["Arn"] != answer["AssumedRoleArn"]:
        raise StepFailed(f"the vended credentials act as {identity['Arn']}")
    print(f"   acting as {identity['Arn']} in account {identity['Account']}")

    print(f"2. launch an instance in {DEV_ACCOUNT}, tagged with the build")
    ec2 = aws("ec2", config, answer)
    tags = [{"Key": "Name", "Value": job_name}, {"Key": "build-id", "Value": build_id},
            {"Key": "job-name", "Value": job_name}]
    try:
        image = min(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
        launched = ec2.run_instances(
            ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]["InstanceId"]
    except ClientError as exc:
        raise StepFailed(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}") from None
    print(f"   launched {launched}")

    print(f"3. find the build's instance in {DEV_ACCOUNT}")
    found = instance_ids(ec2, **{"tag:build-id": build_id})
    if found != [launched]:
        raise StepFailed(f"instances tagged build-id={build_id}: {found}, expected [{launched}]")
    print(f"   {launched} is there, tagged build-id={build_id}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the local stack's local.json (default:"
                        " $STSVEND_LOCAL_CONFIG, else .stsvend/local.json)")
    parser.add_argument("--build-id", default=os.environ.get("BUILD_ID") or str(int(time.time())))
    parser.add_argument("--job-name", default=os.environ.get("JOB_NAME") or "deploy-sample-app")
    args = parser.parse_args(argv)
    try:
        run(args.config, args.build_id, args.job_name)
    except StepFailed as exc:
        print(f"   FAILED: {exc}")
        return 1
    print("Jenkins' cross-account deploy behaved as described.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
