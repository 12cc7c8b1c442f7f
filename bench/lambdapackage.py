"""Benchmark 1b, cold start of the deployment package: the function started the way Lambda starts it.

What runs is the real `chalice package --stage prod` zip (prod settings: X-Ray tracing on, the
stage's environment variables from the template), built the way docs/deploying.md says, extracted
to a read-only directory. The child is the standard library plus PYTHONPATH = that task root, then
the runtime's own boto3/botocore with their bytecode compiled (copied from this environment and
compiled, as the Lambda Python runtime ships them), with PYTHONDONTWRITEBYTECODE=1: whatever the
package ships no bytecode for is compiled on every start, as in Lambda. The clock runs from
spawning the process to its answer to one API Gateway event, against a moto server on loopback
holding the caller's grant.

Baselines, in the same run and started the same way, each packaged by `chalice package` (they
ship no dependency: boto3 is the runtime's):
- the feature-equivalent broker (BROKER_APP): what a team would write instead of stsvend, the
  caller's role looked up in the grants table with one DynamoDB GetItem, then AssumeRole with a
  session tag; prod-like config (X-Ray tracing on: without the X-Ray SDK in its package, Lambda's
  own trace only). Goal: stsvend below it at p50 and p90;
- the smallest Chalice app that creates a boto3 STS client and calls AssumeRole.
The variants run interleaved, ROUNDS times each. Each child also reports its CPU time (user +
system), which a loaded machine inflates far less than wall time, and the split into start-up,
import (Lambda's init phase) and first request; one more start of stsvend and of the broker runs
under cProfile (init and first request apart). See bench/README.md.

The OIDC route (issue 22), in the same run: the same package's first request a CI job's OIDC vend
(its issuer a local one on loopback: discovery and JWKS fetched over HTTP, the token verified with
the package's PyJWT and cryptography) against its first SigV4 vend; and the SigV4 cold start of the
package built from BEFORE_OIDC, the commit before the OIDC route, against today's.
"""

from __future__ import annotations

import compileall
import json
import os
import re
import shutil
import stat
import subprocess
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    RESULT_FD_VARIABLE,
    ROOT,
    base_environment,
    botocore_client,
    comparison,
    create_grants_table,
    interleaved,
    moto_server,
    oidc_entries,
    run_child,
    summary,
)
from bench.events import jenkins_grant

NAME = "cold_start_package"
# The last commit before the OIDC route (issue 22): its package is the "before" of the SigV4 path.
BEFORE_OIDC = "421890a866bb5acd2c44508e4e92c07375f77500"
TITLE = "Cold start of the deployment package, started as Lambda starts it (prod, X-Ray on)"
ROUNDS = 15
GOAL = 1.2
OIDC_GOAL = 1.2
BROKER_GOAL = 1.0
STAGE = "prod"
TRACE_ID = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1"
# What the Lambda Python runtime provides besides the standard library (boto3 and what it needs).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
IMPORTTIME_TOP = 15
# How both baselines answer: the credentials as the credential_process JSON.
_ANSWER = '''\
    creds = answer["Credentials"]
    return {
        "Version": 1,
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
'''
BASELINE_APP = '''\
import boto3
from chalice import Chalice, IAMAuthorizer

app = Chalice(app_name="baseline")
sts = boto3.client("sts")


@app.route("/credentials", methods=["POST"], authorizer=IAMAuthorizer())
def credentials():
    request = app.current_request.json_body
    answer = sts.assume_role(
        RoleArn=request["role_arn"],
        RoleSessionName="baseline-session",
        DurationSeconds=request.get("duration_seconds", 3600),
    )
''' + _ANSWER
BASELINE_CONFIG = {"version": "2.0", "app_name": "baseline", "stages": {STAGE: {"api_gateway_stage": "api"}}}
# The feature-equivalent baseline: what a team would write instead of stsvend. The caller's role
# (from API Gateway's IAM identity) looked up in the same grants table with one GetItem, the role
# asked for checked against the item, then AssumeRole with a session tag naming the caller.
BROKER_APP = '''\
import os

import boto3
from chalice import Chalice, ForbiddenError, IAMAuthorizer

app = Chalice(app_name="broker")
table = os.environ["GRANTS_TABLE"]
dynamodb = boto3.client("dynamodb")
sts = boto3.client("sts")


@app.route("/credentials", methods=["POST"], authorizer=IAMAuthorizer())
def credentials():
    identity = app.current_request.context["identity"]
    account, role = identity["accountId"], identity["userArn"].split("/")[1]
    principal = f"arn:aws:iam::{account}:role/{role}"
    item = dynamodb.get_item(
        TableName=table, Key={"account_id": {"S": account}, "principal": {"S": principal}}
    ).get("Item")
    request = app.current_request.json_body
    allowed = [r["M"]["role_arn"]["S"] for r in (item or {}).get("roles", {}).get("L", [])]
    if request["role_arn"] not in allowed:
        raise ForbiddenError("not allowed")
    answer = sts.assume_role(
        RoleArn=request["role_arn"],
        RoleSessionName="broker-" + identity["caller"].split(":")[-1][:32],
        DurationSeconds=request.get("duration_seconds", 3600),
        Tags=[{"Key": "caller", "Value": identity["userArn"][:256]}],
    )
''' + _ANSWER


# -- building -------------------------------------------------------------------------------------


def _chalice_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    return {**env, "AWS_DEFAULT_REGION": "us-east-1"}


def _run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, env=_chalice_env(), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{result.stdout}{result.stderr}")


def project_snapshot(directory: Path) -> Path:
    """What `chalice package` reads, as a clean checkout has it (no vendor/, no bytecode)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
    for path in ROOT.glob("requirements*.txt"):
        shutil.copy2(path, directory / path.name)
    for name in ("app.py", "Makefile"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, directory / name)
    for name in ("chalicelib", ".chalice", "tools"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, directory / name, ignore=ignore)
    return directory


def package(project: Path, out: Path, merge_template: bool = True) -> Path:
    """`chalice package --stage prod` as docs/deploying.md runs it; returns out/."""
    chalice = str(Path(PYTHON).parent / "chalice")
    argv = [chalice, "package", "--stage", STAGE]
    if merge_template:
        argv += ["--merge-template", ".chalice/package-overrides.json"]
    _run([*argv, str(out)], project)
    return out


def project_at(commit: str, directory: Path) -> Path:
    """What `chalice package` reads, as `commit` had it (git archive of the checkout's history)."""
    names = ["app.py", "chalicelib", ".chalice", "tools", "requirements.txt", "requirements-vendor.txt"]
    archive = subprocess.run(["git", "archive", commit, *names], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def baseline_project(directory: Path) -> Path:
    (directory / "app.py").write_text(BASELINE_APP, encoding="utf-8")
    (directory / "requirements.txt").write_text("", encoding="utf-8")
    (directory / ".chalice").mkdir()
    (directory / ".chalice" / "config.json").write_text(json.dumps(BASELINE_CONFIG), encoding="utf-8")
    return directory


def broker_project(directory: Path) -> Path:
    """The feature-equivalent baseline's project: prod-like (X-Ray tracing on, which without the
    X-Ray SDK in its package is Lambda's own trace only), reading the grants table stsvend's prod
    stage names."""
    stsvend = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    table = stsvend["stages"][STAGE]["environment_variables"]["STSVEND_GRANTS_TABLE"]
    config = {"version": "2.0", "app_name": "broker", "stages": {STAGE: {
        "api_gateway_stage": "api", "xray": True, "environment_variables": {"GRANTS_TABLE": table}}}}
    (directory / "app.py").write_text(BROKER_APP, encoding="utf-8")
    (directory / "requirements.txt").write_text("", encoding="utf-8")
    (directory / ".chalice").mkdir()
    (directory / ".chalice" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def extract(zip_path: Path, directory: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(directory)
    _set_writable(directory, False)
    return directory


def sizes(zip_path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    top: dict[str, int] = {}
    for info in infos:
        top[info.filename.split("/")[0]] = top.get(info.filename.split("/")[0], 0) + info.file_size
    largest = sorted(top.items(), key=lambda item: -item[1])[:6]
    return {
        "zip_bytes": zip_path.stat().st_size,
        "unzipped_bytes": sum(info.file_size for info in infos),
        "files": len(infos),
        "pyc_files": sum(1 for info in infos if info.filename.endswith(".pyc")),
        "largest_unzipped_bytes": dict(largest),
    }


def runtime_library(directory: Path) -> Path:
    """boto3, botocore and their dependencies with bytecode, as the Lambda runtime has them."""
    site = Path(sysconfig.get_path("purelib"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in RUNTIME_PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, directory / name, ignore=ignore)
        else:
            shutil.copy2(source, directory / name)
    if not compileall.compile_dir(directory, quiet=1, workers=0):
        raise RuntimeError("compiling the runtime's boto3/botocore failed")
    _set_writable(directory, False)
    return directory


def _set_writable(directory: Path, writable: bool) -> None:
    """Lambda's task root is read-only: so are these (restored before the scratch is removed)."""
    write = stat.S_IWUSR
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            path = Path(root, name)
            mode = path.stat().st_mode
            path.chmod(mode | write if writable else mode & ~(write | stat.S_IWGRP | stat.S_IWOTH))
    mode = directory.stat().st_mode
    directory.chmod(mode | write if writable else mode & ~(write | stat.S_IWGRP | stat.S_IWOTH))


@contextmanager
def read_only_trees(*directories: Path) -> Iterator[None]:
    try:
        yield
    finally:
        for directory in directories:
            if directory.exists():
                _set_writable(directory, True)


def bootstrap(directory: Path) -> Path:
    """The child (playing the runtime's bootstrap) and the events it sends; standard library only."""
    (directory / "bench").mkdir()
    for name in ("__init__.py", "events.py", "lambdachild.py"):
        shutil.copy2(ROOT / "bench" / name, directory / "bench" / name)
    return directory


# -- running --------------------------------------------------------------------------------------


def lambda_environment(template: dict[str, Any], task: Path, runtime: Path, url: str) -> dict[str, str]:
    """The function's environment variables from the template, and what Lambda itself sets."""
    function = template["Resources"]["APIHandler"]["Properties"]
    variables = dict(function.get("Environment", {}).get("Variables", {}))
    traced = function.get("Tracing") == "Active"
    env = {
        **base_environment(),
        **variables,
        "AWS_ENDPOINT_URL": url,
        "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.get("MemorySize", 128)),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function['Runtime']}",
        "LAMBDA_TASK_ROOT": str(task),
        "PYTHONPATH": f"{task}{os.pathsep}{runtime}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if traced:
        # As Lambda sets them for a sampled request; segments go over UDP to a port nothing reads.
        env.update(_X_AMZN_TRACE_ID=TRACE_ID, AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2",
                   AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR")
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def child_argv(*flags: str) -> list[str]:
    return [PYTHON, "-S", *flags, "-m", "bench.lambdachild"]


def importtime(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`-X importtime` of one cold start: import time by top-level package and the costliest modules."""
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            child_argv("-X", "importtime"), env={**env, RESULT_FD_VARIABLE: str(write_end)}, cwd=cwd,
            pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=120,
        )
    finally:
        os.close(write_end)
        os.close(read_end)
    entries = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            self_us, cumulative_us, _, module = match.groups()
            entries.append({"module": module, "self_ms": int(self_us) / 1000,
                            "cumulative_ms": int(cumulative_us) / 1000})
    by_package: dict[str, float] = {}
    for entry in entries:
        top = entry["module"].split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + entry["self_ms"]
    return {
        "self_ms_by_top_level_package": {
            name: round(ms, 1)
            for name, ms in sorted(by_package.items(), key=lambda i: -i[1])[:IMPORTTIME_TOP]
        },
        "top_modules_by_self_ms": sorted(entries, key=lambda e: -e["self_ms"])[:IMPORTTIME_TOP],
    }


def phase_profile(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """cProfile of one cold start, its init (the import) and its first invocation apart."""
    _, result = run_child(child_argv(), {**env, "BENCH_PROFILE": "1"}, cwd=cwd)
    return {"note": "one run under cProfile (its overhead inflates every figure)", **result["profile"]}


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run(context: Any) -> dict[str, Any]:
    scratch = context.scratch(NAME)
    built = {
        "stsvend": package(prepared(project_snapshot(_mkdir(scratch / "project"))), scratch / "out"),
        "stsvend-before-oidc": package(prepared(project_at(BEFORE_OIDC, _mkdir(scratch / "before"))),
                                       scratch / "before-out"),
        "stsvend-plain": package(project_snapshot(_mkdir(scratch / "plain")), scratch / "plain-out"),
        "baseline": package(baseline_project(_mkdir(scratch / "baseline")), scratch / "baseline-out",
                            merge_template=False),
        "broker": package(broker_project(_mkdir(scratch / "broker")), scratch / "broker-out",
                          merge_template=False),
    }
    runtime = scratch / "runtime"
    tasks = {name: scratch / f"task-{name}" for name in built}
    root = bootstrap(_mkdir(scratch / "bootstrap"))
    with read_only_trees(runtime, *tasks.values()):
        runtime_library(_mkdir(runtime))
        for name, out in built.items():
            extract(out / "deployment.zip", _mkdir(tasks[name]))
        templates = {name: json.loads((out / "sam.json").read_text(encoding="utf-8"))
                     for name, out in built.items()}
        templates["stsvend-plain"] = templates["stsvend"]
        table = templates["stsvend"]["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"][
            "STSVEND_GRANTS_TABLE"]
        from stsvend.local.oidc_issuer import LocalIssuer

        with moto_server(NAME) as url, LocalIssuer("github-actions") as issuer:
            create_grants_table(
                botocore_client("dynamodb", url), table, [jenkins_grant(), *oidc_entries(issuer.url)]
            )
            # One token for the whole run (a job's token lives minutes; the run is shorter than its hour).
            now = int(time.time())
            token = issuer.token(iat=now, nbf=now - 5, exp=now + 3500)
            envs = {name: lambda_environment(templates[name], tasks[name], runtime, url) for name in built}
            # The same package, its first request a CI job's OIDC vend instead of a SigV4 one.
            envs["stsvend-oidc"] = {**envs["stsvend"], "BENCH_OIDC_TOKEN": token}
            splits: dict[str, list[dict[str, Any]]] = {}

            def variant(name: str) -> Any:
                def once() -> float:
                    elapsed, result = run_child(child_argv(), envs[name], cwd=root)
                    splits.setdefault(name, []).append(result)
                    return elapsed

                return once

            names = list(envs)
            for name in names:  # one unmeasured start each: the page cache's first-time costs
                variant(name)()
            splits.clear()
            measured = dict(zip(names, interleaved(ROUNDS, *(variant(n) for n in names)), strict=True))
            subject, oidc = measured["stsvend"], measured["stsvend-oidc"]
            before = measured["stsvend-before-oidc"]
            plain, baseline, broker = measured["stsvend-plain"], measured["baseline"], measured["broker"]
            profile = importtime(envs["stsvend"], root)
            oidc_profile = importtime(envs["stsvend-oidc"], root)
            profiles = {name: phase_profile(envs[name], root) for name in ("stsvend", "broker")}
    how = f"{ROUNDS} fresh processes each, interleaved; spawn to first answer; read-only task root"
    label = "stsvend prod package (X-Ray on) vs Chalice + boto3 STS package"
    broker_label = "stsvend prod package (X-Ray on) vs feature-equivalent broker (GetItem + AssumeRole)"
    broker_name = "Chalice + boto3 broker: GetItem + AssumeRole with a session tag"

    cpu_how = f"{how}; user + system CPU time of the process, less sensitive to load"

    def cpu(name: str) -> list[float]:
        return [result["cpu_ms"] / 1000 for result in splits[name]]

    return {
        "title": TITLE,
        "machine_load_average": _load_average(),
        "comparisons": [
            comparison(broker_label, subject, broker, BROKER_GOAL, "stsvend package", broker_name, how),
            comparison(f"{broker_label}, at p90", subject, broker, BROKER_GOAL, "stsvend package",
                       broker_name, how, quantile="p90_ms"),
            comparison(f"{broker_label}: CPU time of the process", cpu("stsvend"), cpu("broker"), None,
                       "stsvend package", broker_name, cpu_how),
            comparison(f"{broker_label}: CPU time of the process, at p90", cpu("stsvend"), cpu("broker"),
                       None, "stsvend package", broker_name, cpu_how, quantile="p90_ms"),
            comparison(label, subject, baseline, GOAL, "stsvend package", "minimal Chalice + boto3 STS", how),
            comparison(f"{label}, at p90", subject, baseline, GOAL, "stsvend package",
                       "minimal Chalice + boto3 STS", how, quantile="p90_ms"),
            comparison("plain `chalice package` (no package-prep: no bytecode, no X-Ray SDK) vs the same",
                       plain, baseline, None, "stsvend package, plain", "minimal Chalice + boto3 STS", how),
            comparison("first OIDC vend vs first SigV4 vend, the same package (issuer on loopback)",
                       oidc, subject, OIDC_GOAL, "POST /oidc/credentials", "POST /credentials", how),
            comparison("SigV4 cold start with the OIDC route vs the package before it (BEFORE_OIDC)",
                       subject, before, None, "stsvend package", "the package before the OIDC route", how),
        ],
        "before": _before(),
        "what_each_change_bought": _ablation(),
        "package": {name: sizes(out / "deployment.zip") for name, out in built.items()},
        "runtime": templates["stsvend"]["Resources"]["APIHandler"]["Properties"]["Runtime"],
        "breakdown_p50_ms": {name: _split_p50(results) for name, results in splits.items()},
        "importtime": profile,
        "importtime_oidc": oidc_profile,
        "profile": profiles,
    }


def prepared(project: Path) -> Path:
    """The documented build step before `chalice package`/`chalice deploy` (`make package-prep`)."""
    _run([PYTHON, "tools/package_prep.py", str(project)], project)
    return project


def _before() -> dict[str, Any]:
    """The figures recorded before the packaging work (bench/cold_start_package.before.json)."""
    recorded = json.loads((ROOT / "bench" / "cold_start_package.before.json").read_text(encoding="utf-8"))
    entry = recorded["cold_start_package"]
    return {
        "what": recorded["recorded"],
        "finished": recorded["finished"],
        "ratios": {row["quantile"]: row["ratio"] for row in entry["comparisons"]},
        "subject_p50_ms": entry["comparisons"][0]["subject"]["p50_ms"],
        "baseline_p50_ms": entry["comparisons"][0]["baseline"]["p50_ms"],
        "zip_bytes": entry["package"]["stsvend"]["zip_bytes"],
        "unzipped_bytes": entry["package"]["stsvend"]["unzipped_bytes"],
        "load_average_at_start": recorded["machine"]["load_average_at_start"],
        "earlier_run_same_code": recorded["earlier_run_same_code"],
    }


def _ablation() -> dict[str, Any] | None:
    """The last recorded `python -m bench.coldablation --record` (bench/README.md quotes it)."""
    path = ROOT / "bench" / "cold_start_package.ablation.json"
    recorded: dict[str, Any] | None = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return recorded


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _split_p50(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("startup_ms", "import_ms", "first_request_ms", "cpu_ms", "import_cpu_ms", "first_request_cpu_ms")
    out: dict[str, Any] = {key: summary([r[key] / 1000 for r in results])["p50_ms"] for key in keys}
    out["modules_loaded"] = results[-1]["modules"]
    out["top_level_packages_from_task_root"] = results[-1]["loaded_from_task_root"]
    return out
