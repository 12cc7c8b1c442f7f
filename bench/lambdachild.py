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

from bench.events import DEPLOYER, LambdaContext, credentials_event  # noqa: E402


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    event = credentials_event(
        "0f0e5a8c-0000-4000-8000-00000000cold", {"role_arn": DEPLOYER, "duration_seconds": 900}
    )
    before_import = time.perf_counter()
    cpu_before_import = time.process_time()
    import app as module  # the handler `app.app`, as Chalice's template names it

    imported = time.perf_counter()
    cpu_imported = time.process_time()
    profiling = os.environ.get("BENCH_PROFILE_FIRST_REQUEST") == "1"
    if profiling:
        import cProfile

        profiler = cProfile.Profile()
        response = profiler.runcall(module.app, event, LambdaContext())
    else:
        response = module.app(event, LambdaContext())
    served = time.perf_counter()
    cpu_served = time.process_time()
    status = response["statusCode"]
    payload = {
        "status": status,
        "startup_ms": round((before_import - STARTED) * 1000, 3),
        "import_ms": round((imported - before_import) * 1000, 3),
        "first_request_ms": round((served - imported) * 1000, 3),
        # CPU time (user + system) of this process: from its start (the interpreter's own start-up
        # included), and of the import and the first request. Wall time less CPU time is waiting:
        # for the emulator's answers, and for a CPU on a loaded machine.
        "cpu_ms": round(_cpu_seconds() * 1000, 3),
        "import_cpu_ms": round((cpu_imported - cpu_before_import) * 1000, 3),
        "first_request_cpu_ms": round((cpu_served - cpu_imported) * 1000, 3),
        "modules": len(sys.modules),
        "loaded_from_task_root": sorted(
            {
                name.split(".")[0]
                for name, loaded in list(sys.modules.items())
                if str(getattr(loaded, "__file__", "") or "").startswith(os.environ["LAMBDA_TASK_ROOT"])
            }
        ),
    }
    if profiling:
        payload["profile"] = _profile_summary(profiler)
    if status != 200:
        payload["error"] = f"HTTP {status}: {json.loads(response['body']).get('Code')}"
    fd = int(os.environ["BENCH_RESULT_FD"])
    os.write(fd, (json.dumps(payload) + "\n").encode())
    os.close(fd)


# What the first request does, by the function that does it (cumulative time, under the profiler).
PARTS = {
    "botocore session": ("botocore/session.py", "get_session"),
    "create client (all)": ("botocore/session.py", "create_client"),
    "load service model JSON": ("botocore/loaders.py", "load_service_model"),
    "load any botocore data file": ("botocore/loaders.py", "load_data_with_path"),
    "endpoint resolver (endpoints.json)": ("botocore/session.py", "_get_internal_component"),
    "DynamoDB call": ("botocore/client.py", "_api_call"),
    "grants query (store)": ("chalicelib/grant_store.py", "for_account"),
    "AssumeRole (chalicelib.sts)": ("chalicelib/sts.py", "assume_role"),
    "X-Ray SDK, handler capture": ("aws_lambda_powertools/tracing/tracer.py", "decorate"),
    "HTTP send (urllib3)": ("urllib3/connectionpool.py", "urlopen"),
}


def _profile_summary(profiler) -> dict:
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {}
    for label, (suffix, function) in PARTS.items():
        cumulative = [ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                      if file.endswith(suffix) and name == function]
        # a recursive function appears once; several matches (same name, several lines) are summed
        parts[label] = round(sum(cumulative) * 1000, 1)
    top = sorted(stats.items(), key=lambda item: -item[1][3])[:25]
    return {
        "total_ms": round(max(ct for (_, _, _, ct, _) in stats.values()) * 1000, 1),
        "parts_cumulative_ms": parts,
        "top_cumulative": [
            {"function": f"{'/'.join(file.split('/')[-2:])}:{name}", "cumulative_ms": round(ct * 1000, 1)}
            for (file, _, name), (_, _, _, ct, _) in top
        ],
    }


if __name__ == "__main__":
    main()
