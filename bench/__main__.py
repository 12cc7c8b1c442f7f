"""`python -m bench [NAME ...]`: run the benchmarks (all by default), print the table and write
bench/results.json (a partial run replaces only its own entries)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine
from bench.context import Context

BENCHMARKS = {
    "cold_start": "bench.coldstart",
    "cold_start_package": "bench.lambdapackage",
    "warm_vend": "bench.warm",
    "end_to_end": "bench.endtoend",
    "client_cache": "bench.clientcache",
    "grant_scale": "bench.scale",
    "web_identity_vend": "bench.webidentity",
}
RESULTS = ROOT / "bench" / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with Context() as context:
        for name in names:
            print(f"== {name} ...", flush=True)
            begun = time.perf_counter()
            result = importlib.import_module(BENCHMARKS[name]).run(context)
            result["seconds"] = round(time.perf_counter() - begun, 1)
            results[name] = result
            print(table({name: result}), flush=True)
    wall = time.perf_counter() - started
    document = _merge(results, names, wall)
    print()
    print(table(document["benchmarks"]))
    print(f"\nmachine: {_machine_line(document['machine'])}; this run: {wall:.0f} s")
    _write(RESULTS, document)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _merge(results: dict[str, Any], names: list[str], wall: float) -> dict[str, Any]:
    document: dict[str, Any] = {"benchmarks": {}}
    if RESULTS.exists() and set(names) != set(BENCHMARKS):
        try:
            document = json.loads(RESULTS.read_text(encoding="utf-8"))
        except ValueError:
            pass
    document["benchmarks"] = {
        name: results.get(name) or document["benchmarks"].get(name)
        for name in BENCHMARKS
        if results.get(name) or document["benchmarks"].get(name)
    }
    document["machine"] = machine()
    document["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    document["last_run"] = {"benchmarks": names, "wall_seconds": round(wall, 1)}
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _machine_line(info: dict[str, Any]) -> str:
    return f"{info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}"


def table(benchmarks: dict[str, Any]) -> str:
    header = ("benchmark", "comparison", "subject p50", "baseline p50", "ratio", "goal", "")
    rows = [header]
    for name, result in benchmarks.items():
        for row in result["comparisons"]:
            s, b = row["subject"], row["baseline"]
            quantile = row["quantile"].removesuffix("_ms")
            subject = f"{s['p50_ms']:.2f} ms"
            baseline = f"{b['p50_ms']:.2f} ms"
            if quantile != "p50":
                subject += f" ({quantile} {s[row['quantile']]:.2f})"
                baseline += f" ({quantile} {b[row['quantile']]:.2f})"
            goal = "-" if row["goal"] is None else f"<= {row['goal']:g}"
            verdict = "" if row["met"] is None else ("met" if row["met"] else "MISSED")
            rows.append((name, row["label"], subject, baseline, f"{row['ratio']:.3f}x", goal, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
