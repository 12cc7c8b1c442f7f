"""Benchmark 1, cold start: a fresh Python process imports the function's module and serves its
first POST /credentials (an injected API Gateway event, identity mode `apigateway`), with AWS
answered by a moto server on loopback that holds the caller's grant.

Measured from spawning the process to its first answer (interpreter start-up included on every
side), against the smallest Chalice app that creates an STS client (boto3, as Chalice's own samples
do) and calls AssumeRole on the same emulator. The variants run interleaved, ROUNDS times each.
"""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    base_environment,
    botocore_client,
    comparison,
    create_grants_table,
    interleaved,
    moto_server,
    run_child,
    summary,
)
from bench.events import jenkins_grant

NAME = "cold_start"
TITLE = "Cold start (fresh process: import + first POST /credentials)"
ROUNDS = 15
GOAL = 1.2
TABLE = "stsvend-grants-bench"
# A trace header as Lambda sets it for a sampled request; X-Ray sends segments over UDP to
# AWS_XRAY_DAEMON_ADDRESS, here a loopback port nothing listens on.
TRACE_ID = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1"


def task_root(directory: Path) -> Path:
    """What Lambda runs from: the function's code (app.py, chalicelib/) and, for the baselines,
    the benchmark's child, all without bytecode. Lambda's file system is read-only and a Chalice
    package ships no .pyc, so the function's own code is compiled on every cold start; the
    children are run with PYTHONDONTWRITEBYTECODE so that stays true for every run here."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy2(ROOT / "app.py", directory / "app.py")
    shutil.copytree(ROOT / "chalicelib", directory / "chalicelib", ignore=ignore)
    (directory / "bench").mkdir()
    for name in ("__init__.py", "events.py", "coldchild.py"):
        shutil.copy2(ROOT / "bench" / name, directory / "bench" / name)
    return directory


def stdlib_bytecode_only(context: Any, root: Path, env: dict[str, str]) -> Path:
    """A PYTHONPYCACHEPREFIX holding bytecode for the standard library only. A Chalice package
    ships none for the function's dependencies (wheels are unpacked as they are, and Lambda cannot
    write any), so in Lambda they are compiled on every cold start too; the runtime's own library
    is precompiled."""
    prefix = context.scratch(f"{NAME}-pycache")
    writing = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run_child([PYTHON, "-m", "bench.coldchild", "stsvend"], {**writing, "PYTHONPYCACHEPREFIX": str(prefix)},
              cwd=root)
    for compiled in (Path(sysconfig.get_path("purelib")), Path(sysconfig.get_path("platlib")), root):
        shutil.rmtree(prefix / compiled.relative_to(compiled.anchor), ignore_errors=True)
    return prefix


def run(context: Any) -> dict[str, Any]:
    root = task_root(context.scratch(NAME))
    with moto_server(NAME) as url:
        create_grants_table(botocore_client("dynamodb", url), TABLE, [jenkins_grant()])
        env = {
            **base_environment(),
            "AWS_ENDPOINT_URL": url,
            "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
            "STSVEND_GRANTS_TABLE": TABLE,
            "STSVEND_IDENTITY_MODE": "apigateway",
            "STSVEND_GRANT_CACHE_SECONDS": "10",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        untraced = {**env, "POWERTOOLS_TRACE_DISABLED": "true"}
        traced = {
            **env,
            "LAMBDA_TASK_ROOT": str(ROOT),
            "_X_AMZN_TRACE_ID": TRACE_ID,
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        }
        package = {**untraced, "PYTHONPYCACHEPREFIX": str(stdlib_bytecode_only(context, root, untraced))}
        splits: dict[str, list[dict[str, Any]]] = {}

        def variant(name: str, variant_env: dict[str, str]) -> Any:
            def once() -> float:
                argv = [PYTHON, "-m", "bench.coldchild", name.split(":")[0]]
                elapsed, result = run_child(argv, variant_env, cwd=root)
                splits.setdefault(name, []).append(result)
                return elapsed

            return once

        names = ["stsvend", "stsvend:traced", "baseline-boto3", "baseline-botocore", "stsvend:package"]
        envs = [untraced, traced, untraced, untraced, package]
        # One unmeasured run each: the emulator's and the page cache's first-time costs.
        for name, variant_env in zip(names, envs, strict=True):
            variant(name, variant_env)()
        splits.clear()
        stsvend, traced_times, boto3_times, botocore_times, package_times = interleaved(
            ROUNDS, *(variant(n, e) for n, e in zip(names, envs, strict=True))
        )
    how = f"{ROUNDS} fresh processes each, interleaved; spawn to first answer"
    return {
        "title": TITLE,
        "comparisons": [
            comparison("stsvend (local-stage settings, tracing off) vs boto3 Chalice app",
                       stsvend, boto3_times, GOAL, "stsvend app", "minimal Chalice + boto3 STS", how),
            comparison("stsvend with X-Ray tracing on (dev/prod) vs boto3 Chalice app",
                       traced_times, boto3_times, None, "stsvend app, traced", "minimal Chalice + boto3 STS",
                       how),
            comparison("stsvend (tracing off) vs botocore-only Chalice app (stricter baseline)",
                       stsvend, botocore_times, None, "stsvend app", "minimal Chalice + botocore STS", how),
            comparison("stsvend with no bytecode but the stdlib's (a Chalice zip) vs with it",
                       package_times, stsvend, None, "dependencies compiled at start", "stsvend app", how),
        ],
        "breakdown_p50_ms": {name: _split_p50(results) for name, results in splits.items()},
    }


def _split_p50(results: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("startup_ms", "import_ms", "first_request_ms")
    out = {key: summary([r[key] / 1000 for r in results])["p50_ms"] for key in keys}
    out["modules_loaded"] = results[-1]["modules"]
    return out
