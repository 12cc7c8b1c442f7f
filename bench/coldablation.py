"""What each change to the deployment package's cold start bought: packages built from several
commits of this repository, started side by side as `cold_start_package` starts them.

    PYTHONPATH=. .venv/bin/python -m bench.coldablation [--rounds N] REF[:no-models] ...

Each REF is a commit (`git archive`), packaged the documented way (its own `make package-prep`,
then `chalice package --stage prod`); `REF:no-models` is that package without its cut-down botocore
models. The feature-equivalent broker and the STS-only app run in the same interleaved rounds.
With --oidc, each REF also starts with a CI job's OIDC vend as its first request (`REF/oidc`; a
local issuer on loopback, as in cold_start_package), for the OIDC route's first-request cost.
Prints wall p50/p90, CPU p50 and the first request's wall p50 of each; with --record, also writes
them to bench/cold_start_package.ablation.json, which the cold_start_package benchmark copies into
results.json (bench/README.md quotes it with its load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import lambdapackage as lp
from bench.common import (
    ROOT,
    botocore_client,
    create_grants_table,
    interleaved,
    moto_server,
    oidc_entries,
    run_child,
    summary,
)
from bench.events import jenkins_grant
from stsvend.local.oidc_issuer import LocalIssuer

TABLE = "stsvend-grants-prod"
# The recorded comparison, which cold_start_package copies into results.json.
RECORD = ROOT / "bench" / "cold_start_package.ablation.json"


def from_commit(ref: str, scratch: Path) -> Path:
    source = lp._mkdir(scratch / "source")
    subprocess.run(f"git -C {ROOT} archive {ref} | tar -x -C {source}", shell=True, check=True)
    project = lp._mkdir(scratch / "project")
    for name in ("app.py", "requirements.txt", "requirements-vendor.txt"):
        shutil.copy2(source / name, project / name)
    for name in ("chalicelib", ".chalice", "tools"):
        shutil.copytree(source / name, project / name)
    return lp.package(lp.prepared(project), scratch / "out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--record", action="store_true", help=f"also write {RECORD.name}")
    parser.add_argument("--oidc", action="store_true", help="also each REF's first OIDC vend (REF/oidc)")
    parser.add_argument("refs", nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coldablation-") as temporary:
        scratch = Path(temporary)
        built: dict[str, Path] = {}
        for ref in args.refs:
            built[ref] = from_commit(ref.partition(":")[0], lp._mkdir(scratch / f"build-{len(built)}"))
        built["broker"] = lp.package(lp.broker_project(lp._mkdir(scratch / "broker")), scratch / "broker-out",
                                     merge_template=False)
        built["STS-only"] = lp.package(lp.baseline_project(lp._mkdir(scratch / "baseline")),
                                       scratch / "baseline-out", merge_template=False)
        tasks = {name: scratch / f"task-{index}" for index, name in enumerate(built)}
        runtime = scratch / "runtime"
        root = lp.bootstrap(lp._mkdir(scratch / "bootstrap"))
        with lp.read_only_trees(runtime, *tasks.values()):
            lp.runtime_library(lp._mkdir(runtime))
            for name, out in built.items():
                lp.extract(out / "deployment.zip", lp._mkdir(tasks[name]))
                if name.endswith(":no-models"):
                    lp._set_writable(tasks[name], True)
                    shutil.rmtree(tasks[name] / "botocore_models")
                    lp._set_writable(tasks[name], False)
            templates = {name: json.loads((out / "sam.json").read_text(encoding="utf-8"))
                         for name, out in built.items()}
            with moto_server("coldablation") as url, LocalIssuer("github-actions") as issuer:
                create_grants_table(botocore_client("dynamodb", url), TABLE,
                                    [jenkins_grant(), *(oidc_entries(issuer.url) if args.oidc else [])])
                envs = {name: lp.lambda_environment(templates[name], tasks[name], runtime, url)
                        for name in built}
                if args.oidc:
                    now = int(time.time())
                    token = issuer.token(iat=now, nbf=now - 5, exp=now + 3500)
                    for ref in args.refs:
                        envs[f"{ref}/oidc"] = {**envs[ref], "BENCH_OIDC_TOKEN": token}
                splits: dict[str, list[dict[str, Any]]] = {name: [] for name in envs}

                def variant(name: str) -> Any:
                    def once() -> float:
                        elapsed, result = run_child(lp.child_argv(), envs[name], cwd=root)
                        splits[name].append(result)
                        return elapsed

                    return once

                for name in envs:
                    variant(name)()
                    splits[name].clear()
                timings = interleaved(args.rounds, *(variant(name) for name in envs))
    load = [round(value, 2) for value in os.getloadavg()]
    print(f"load average {', '.join(str(value) for value in load)}; {args.rounds} rounds")
    variants = {}
    for name, seconds in zip(splits, timings, strict=True):
        wall = summary(seconds)
        cpu = statistics.median(result["cpu_ms"] for result in splits[name])
        first = statistics.median(result["first_request_ms"] for result in splits[name])
        variants[name] = {"wall": wall, "cpu_p50_ms": cpu, "first_request_p50_ms": first}
        print(f"{name:28} wall p50 {wall['p50_ms']:7.1f} p90 {wall['p90_ms']:7.1f}  CPU p50 {cpu:7.1f}"
              f"  first request p50 {first:6.1f}")
    if args.record:
        recorded = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": load,
                    "rounds": args.rounds, "variants": variants}
        RECORD.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
