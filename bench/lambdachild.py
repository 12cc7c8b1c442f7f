"""One cold start as the Lambda Python runtime makes it: import the handler's module from the task
root (the extracted deployment package, first on sys.path) and hand it one API Gateway event.

    python -S -m bench.lambdachild

Run by bench.lambdapackage with PYTHONPATH=<task root>:<runtime's boto3/botocore> and nothing
else beyond the standard library (-S: no site-packages of this machine can fill a gap in the
package). Only the standard library is loaded before the clock's first reading is used.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402 - after the clock starts, on purpose
import os  # noqa: E402
import sys  # noqa: E402

from bench.events import DEPLOYER, LambdaContext, credentials_event, oidc_event  # noqa: E402


def main() -> None:
    request_id, body = "0f0e5a8c-0000-4000-8000-00000000cold", {"role_arn": DEPLOYER, "duration_seconds": 900}
    # BENCH_OIDC_TOKEN: the first request is a CI job's OIDC vend instead of a SigV4 one.
    token = os.environ.get("BENCH_OIDC_TOKEN")
    event = oidc_event(request_id, token, body) if token else credentials_event(request_id, body)
    before_import = time.perf_counter()
    import app as module  # the handler `app.app`, as Chalice's template names it

    imported = time.perf_counter()
    response = module.app(event, LambdaContext())
    served = time.perf_counter()
    status = response["statusCode"]
    payload = {
        "status": status,
        "startup_ms": round((before_import - STARTED) * 1000, 3),
        "import_ms": round((imported - before_import) * 1000, 3),
        "first_request_ms": round((served - imported) * 1000, 3),
        "modules": len(sys.modules),
        "loaded_from_task_root": sorted(
            {
                name.split(".")[0]
                for name, loaded in list(sys.modules.items())
                if str(getattr(loaded, "__file__", "") or "").startswith(os.environ["LAMBDA_TASK_ROOT"])
            }
        ),
    }
    if status != 200:
        payload["error"] = f"HTTP {status}: {json.loads(response['body']).get('Code')}"
    fd = int(os.environ["BENCH_RESULT_FD"])
    os.write(fd, (json.dumps(payload) + "\n").encode())
    os.close(fd)


if __name__ == "__main__":
    main()
