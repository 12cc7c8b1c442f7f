"""One cold start, in a fresh process: import the function's module and serve one POST /credentials.

    python -m bench.coldchild stsvend|baseline-boto3|baseline-botocore

`stsvend` is this repository's `app` (the environment decides tracing); the baselines are the
smallest Chalice app that does the same AWS work a credential vendor cannot avoid: create an STS
client and call AssumeRole. Only the standard library is loaded before the measured imports.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402 - after the clock starts, on purpose
import os  # noqa: E402
import sys  # noqa: E402

from bench.events import DEPLOYER, LambdaContext, credentials_event  # noqa: E402


def baseline_app(use_boto3: bool) -> object:
    from chalice import Chalice

    if use_boto3:
        import boto3

        sts = boto3.client("sts")
    else:
        import botocore.session

        sts = botocore.session.get_session().create_client("sts")
    app = Chalice(app_name="baseline")

    @app.route("/credentials", methods=["POST"])
    def credentials() -> dict[str, object]:
        request = app.current_request.json_body
        answer = sts.assume_role(
            RoleArn=request["role_arn"],
            RoleSessionName="baseline-session",
            DurationSeconds=request.get("duration_seconds", 3600),
        )
        creds = answer["Credentials"]
        return {
            "Version": 1,
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"],
            "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    return app


def main() -> None:
    variant = sys.argv[1]
    event = credentials_event(
        "0f0e5a8c-0000-4000-8000-00000000cold", {"role_arn": DEPLOYER, "duration_seconds": 900}
    )
    before_import = time.perf_counter()
    if variant == "stsvend":
        import app as module

        handler = module.app
    else:
        handler = baseline_app(variant == "baseline-boto3")
    imported = time.perf_counter()
    response = handler(event, LambdaContext())
    served = time.perf_counter()
    status = response["statusCode"]
    fd = int(os.environ["BENCH_RESULT_FD"])
    payload = {
        "status": status,
        "startup_ms": round((before_import - STARTED) * 1000, 3),
        "import_ms": round((imported - before_import) * 1000, 3),
        "first_request_ms": round((served - imported) * 1000, 3),
        "modules": len(sys.modules),
    }
    if status != 200:
        payload["error"] = f"HTTP {status}: {json.loads(response['body']).get('Code')}"
    os.write(fd, (json.dumps(payload) + "\n").encode())
    os.close(fd)


if __name__ == "__main__":
    main()
