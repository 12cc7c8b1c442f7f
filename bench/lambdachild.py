"""One cold start as the Lambda Python runtime makes it: import the handler's module from the task
root (the extracted deployment package, first on sys.path) and hand it one API Gateway event.

    python -S -m bench.lambdachild

Run by bench.lambdapackage with PYTHONPATH=<task root>:<runtime's boto3/botocore> and nothing
else beyond the standard library (-S: no site-packages of this machine can fill a gap in the
package). Only the standard library is loaded before the clock's first reading is used.
"""

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402 - after the clock starts, on purpose
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from bench.events import DEPLOYER, LambdaContext, credentials_event, oidc_event  # noqa: E402


def _file_of(module: object) -> str:
    """A module's __file__, read without touching the module: an attribute read would load a module
    registered to load on first use (the OIDC route defers one), work the clock would charge to
    the function after its answer."""
    try:
        namespace = object.__getattribute__(module, "__dict__")
    except AttributeError:
        return ""
    return str(namespace.get("__file__") or "")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    request_id, body = "0f0e5a8c-0000-4000-8000-00000000cold", {"role_arn": DEPLOYER, "duration_seconds": 900}
    # BENCH_OIDC_TOKEN: the first request is a CI job's OIDC vend instead of a SigV4 one.
    token = os.environ.get("BENCH_OIDC_TOKEN")
    event = oidc_event(request_id, token, body) if token else credentials_event(request_id, body)
    profiling = os.environ.get("BENCH_PROFILE") == "1"
    if profiling:
        import cProfile

        profilers = {"init": cProfile.Profile(), "first_request": cProfile.Profile()}
    before_import = time.perf_counter()
    cpu_before_import = time.process_time()
    if profiling:
        module = profilers["init"].runcall(importlib.import_module, "app")
    else:
        import app as module  # the handler `app.app`, as Chalice's template names it

    imported = time.perf_counter()
    cpu_imported = time.process_time()
    if profiling:
        response = profilers["first_request"].runcall(module.app, event, LambdaContext())
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
                if _file_of(loaded).startswith(os.environ["LAMBDA_TASK_ROOT"])
            }
        ),
    }
    if profiling:
        payload["profile"] = {phase: _profile_summary(profiler) for phase, profiler in profilers.items()}
    if status != 200:
        payload["error"] = f"HTTP {status}: {json.loads(response['body']).get('Code')}"
    fd = int(os.environ["BENCH_RESULT_FD"])
    os.write(fd, (json.dumps(payload) + "\n").encode())
    os.close(fd)


# What a phase does, by the function that does it (cumulative time, under the profiler).
PARTS = {
    "botocore session": [("botocore/session.py", "get_session")],
    "create clients": [("botocore/session.py", "create_client")],
    # botocore's loader, or the one chalicelib.aws gives the session
    "load service models": [("botocore/loaders.py", "load_service_model"),
                            ("chalicelib/aws.py", "load_service_model")],
    "endpoint data (endpoints.json)": [("botocore/session.py", "create_default_resolver")],
    "grants query (chalicelib.grant_store)": [("chalicelib/grant_store.py", "for_account")],
    "AssumeRole (chalicelib.sts)": [("chalicelib/sts.py", "assume_role")],
    "HTTP round trips to the emulator (urllib3)": [("urllib3/connectionpool.py", "urlopen")],
    "X-Ray: Tracer set-up (imports the SDK, and botocore with it; patches botocore)": [
        ("aws_lambda_powertools/tracing/tracer.py", "__init__")],
    "X-Ray: begin/end segments and subsegments": [("aws_xray_sdk/core/recorder.py", "begin_subsegment")],
    "X-Ray: send to the daemon (UDP)": [("aws_xray_sdk/core/emitters/udp_emitter.py", "send_entity")],
}


def _profile_summary(profiler) -> dict:  # type: ignore[no-untyped-def]
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {}
    for label, functions in PARTS.items():
        # the first function of the label that ran; the others are alternatives to it (the loader
        # chalicelib.aws gives botocore replaces botocore's own method)
        cumulative = [ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                      if (file.endswith(functions[0][0]) and name == functions[0][1])]
        if not cumulative:
            cumulative = [ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                          if any(file.endswith(f) and name == n for f, n in functions[1:])]
        parts[label] = round(sum(cumulative) * 1000, 1)
    own: dict[str, float] = {}  # time in each package's own code (tottime), by top-level package
    for (file, _, _), (_, _, tottime, _, _) in stats.items():
        package = _package_of(file)
        own[package] = own.get(package, 0.0) + tottime
    return {
        "total_ms": round(sum(own.values()) * 1000, 1),
        "parts_cumulative_ms": parts,
        "own_time_by_package_ms": {name: round(ms * 1000, 1)
                                   for name, ms in sorted(own.items(), key=lambda item: -item[1])[:15]},
    }


def _package_of(file: str) -> str:
    if file.startswith("<") or file == "~":
        return "builtins and frozen modules"
    for root in (os.environ["LAMBDA_TASK_ROOT"], *os.environ["PYTHONPATH"].split(os.pathsep)):
        if file.startswith(root.rstrip("/") + "/"):
            return file[len(root.rstrip("/")) + 1:].split("/")[0].removesuffix(".py")
    return "stdlib: " + os.path.basename(file).removesuffix(".py")


if __name__ == "__main__":
    main()
