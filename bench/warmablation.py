"""What a change to the warm vend's code buys: this checkout's app and another commit's, in one
process, served request by request in a new random order each round.

    PYTHONPATH=. .venv/bin/python -m bench.warmablation [--rounds N] REF

REF's `app.py` and `chalicelib/` (`git archive`) are imported under other names (`app_ref`,
`chalicelib_ref`) beside this checkout's own, each with its AWS clients stubbed as `bench.warm`
stubs them; the framework floor runs in the same rounds. Three paths, each on both sides: the same
body on every request (the warm_vend goal row), a new body on every request, and the OIDC route.
Prints each side's p50 over the floor and this checkout's p50 over REF's. Load on a shared machine
hits both sides alike, so the ratio holds where separate `warm_vend` runs wander by several percent;
an A/A run (REF = HEAD) shows the method's own spread.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import warm
from bench.common import PYTHON, ROOT, base_environment, child_main, oidc_entries, run_child

PATHS = ("same", "new", "oidc")


def import_as_ref(ref: str, directory: Path) -> None:
    """REF's app.py and chalicelib/ in `directory`, renamed app_ref and chalicelib_ref."""
    archive = subprocess.run(["git", "archive", ref, "app.py", "chalicelib"], cwd=ROOT,
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    (directory / "chalicelib").rename(directory / "chalicelib_ref")
    (directory / "app.py").rename(directory / "app_ref.py")
    for path in [directory / "app_ref.py", *(directory / "chalicelib_ref").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"\bchalicelib\b", "chalicelib_ref", text), encoding="utf-8")


def measure() -> dict[str, Any]:
    from bench.events import DEPLOYER, REQUEST, LambdaContext, credentials_event, oidc_event
    from stsvend.local.oidc_issuer import LocalIssuer

    sys.path.insert(0, os.environ["BENCH_REF_DIR"])
    rounds = int(os.environ["BENCH_ROUNDS"])
    issuer = LocalIssuer("github-actions").start()
    items = oidc_entries(issuer.url)
    total = rounds + 10  # seven queued STS answers per event: enough for the three paths
    apps: dict[str, Any] = {"ref": warm.prepare(total, items, "app_ref", "chalicelib_ref")[0]}
    apps["this"], _, sts, params = warm.prepare(total, items)
    floor = warm.framework_floor(sts, params)
    same = credentials_event("00000000-0000-4000-8000-000000000001")
    oidc = oidc_event("00000000-0000-4000-a000-000000000001", issuer.token(),
                      {"role_arn": DEPLOYER, "duration_seconds": 900})
    # A body neither side has seen (a new build id per side and round).
    fresh = {
        side: [credentials_event(f"00000000-0000-4000-9000-{n:012d}",
                                 {**REQUEST, "tags": {**REQUEST["tags"], "build-id": f"{side}{n}"}})
               for n in range(rounds)]
        for side in apps
    }
    times: dict[str, list[float]] = {"floor": []}
    times.update({f"{side} {path}": [] for side in apps for path in PATHS})
    context, clock, statuses = LambdaContext(), time.perf_counter, set()
    gc.collect()
    for n in range(rounds):
        order = list(times)
        random.shuffle(order)
        for name in order:
            side, _, path = name.partition(" ")
            handler = floor if side == "floor" else apps[side]
            event = fresh[side][n] if path == "new" else oidc if path == "oidc" else same
            started = clock()
            statuses.add(handler(event, context)["statusCode"])
            times[name].append(clock() - started)
    issuer.stop()
    if statuses != {200}:
        raise RuntimeError(f"vend answered {sorted(statuses)}")
    skip = min(warm.WARMUP, rounds // 5)
    return {name: statistics.median(values[skip:]) * 1000 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("ref")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stsvend-warmablation-") as scratch:
        import_as_ref(args.ref, Path(scratch))
        env = {**base_environment(), "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
               "POWERTOOLS_TRACE_DISABLED": "true", "STSVEND_GRANTS_TABLE": "stsvend-grants-bench",
               "STSVEND_IDENTITY_MODE": "apigateway", "STSVEND_GRANT_CACHE_SECONDS": "3600",
               "BENCH_REF_DIR": scratch, "BENCH_ROUNDS": str(args.rounds)}
        _, p50 = run_child([PYTHON, "-m", "bench.warmablation", "--child"], env, timeout=1800)
    print(f"{args.rounds} rounds, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f};"
          f" p50 in ms, framework floor {p50['floor']:.4f}")
    for path in PATHS:
        this, ref = p50[f"this {path}"], p50[f"ref {path}"]
        print(f"{path:5s} this {this:.4f} ({this / p50['floor']:.3f}x floor)"
              f"  {args.ref} {ref:.4f} ({ref / p50['floor']:.3f}x floor)  this/{args.ref} {this / ref:.4f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main(measure)
    else:
        sys.exit(main())
