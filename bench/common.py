"""What the benchmarks share: statistics, interleaved timing, child processes that report on a pipe,
a moto server on a free loopback port, the grants table, and the machine description."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.events import REGION

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RESULT_FD_VARIABLE = "BENCH_RESULT_FD"
# Emulator-only keys: moto accepts any key while IAM authentication is off.
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIABENCHSERVICE0001", "AWS_SECRET_ACCESS_KEY": "bench-not-a-secret"}


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Milliseconds: p50, p90, p99, min and mean of timings given in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


def comparison(
    label: str,
    subject: Sequence[float],
    baseline: Sequence[float],
    goal: float | None,
    subject_name: str,
    baseline_name: str,
    how: str,
    quantile: str = "p50_ms",
) -> dict[str, Any]:
    """One row of the table: subject vs baseline at `quantile`, judged against `goal` (a ratio)."""
    s, b = summary(subject), summary(baseline)
    ratio = s[quantile] / b[quantile]
    return {
        "label": label,
        "subject_name": subject_name,
        "baseline_name": baseline_name,
        "how": how,
        "subject": s,
        "baseline": b,
        "quantile": quantile,
        "ratio": round(ratio, 3),
        "goal": goal,
        "met": None if goal is None else ratio <= goal,
    }


def interleaved(rounds: int, *actions: Callable[[], float | None]) -> list[list[float]]:
    """Run every action once per round, `rounds` times, in a new random order each round (seeded);
    each returns its own duration in seconds, or None to be timed here. Interleaving makes load on
    the machine hit every side alike; shuffling keeps one side from always following another."""
    order = random.Random(20261128)
    timings: list[list[float]] = [[] for _ in actions]
    indexes = list(range(len(actions)))
    for _ in range(rounds):
        order.shuffle(indexes)
        for index in indexes:
            started = time.perf_counter()
            measured = actions[index]()
            timings[index].append(time.perf_counter() - started if measured is None else measured)
    return timings


# -- child processes ------------------------------------------------------------------------------


def run_child(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 60.0, cwd: Path = ROOT
) -> tuple[float, dict[str, Any]]:
    """Start `argv`, wait for the one JSON line it writes to the result pipe (see `report`), and
    return (seconds from start to that line, the line). Its stdout and stderr (the audit log, EMF
    metrics) go to /dev/null and a file: nothing a child prints can reach this terminal."""
    read_end, write_end = os.pipe()
    child_env = {**env, RESULT_FD_VARIABLE: str(write_end)}
    errors = ROOT / ".stsvend" / "bench" / "child-stderr.log"
    errors.parent.mkdir(parents=True, exist_ok=True)
    with errors.open("ab") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), env=child_env, cwd=cwd, pass_fds=(write_end,),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    os.close(write_end)
    watchdog = threading.Timer(timeout, process.kill)  # a hung child closes the pipe by dying
    watchdog.start()
    try:
        with os.fdopen(read_end, "rb") as pipe:
            line = pipe.readline()
            elapsed = time.perf_counter() - started
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if not line:
        raise RuntimeError(f"{argv[1:4]} exited with {process.returncode} without a result; see {errors}")
    result = json.loads(line)
    if result.get("error"):
        raise RuntimeError(f"{argv[1:4]}: {result['error']}")
    return elapsed, result


def run_process(argv: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> float:
    """Run a command to completion (output discarded; it must exit 0); its wall time in seconds.

    Not `subprocess.run(timeout=...)`: with a timeout, the wait polls with growing sleeps, which
    rounds every time up to the next step. A timer thread kills a hung command.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        code = process.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited with {code}")
    return elapsed


def report(payload: Mapping[str, Any]) -> None:
    """In a child: hand one JSON line to the parent (never anything secret)."""
    fd = int(os.environ[RESULT_FD_VARIABLE])
    os.write(fd, (json.dumps(payload) + "\n").encode())
    os.close(fd)


def child_main(body: Callable[[], Mapping[str, Any]]) -> None:
    """Run a child benchmark and report its result, or its error, to the parent."""
    try:
        payload = dict(body())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        payload = {"error": f"{type(exc).__name__}: {exc}"}
    report(payload)


def base_environment() -> dict[str, str]:
    """This environment without anything that points AWS clients elsewhere, plus fake keys."""
    from stsvend.local.stack import hermetic_environment

    return {**hermetic_environment(), **FAKE_KEYS, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


# -- the emulator ---------------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server(name: str) -> Iterator[str]:
    """A moto server (IAM authentication off) on a free 127.0.0.1 port; yields its URL."""
    from stsvend.local.emulator import Emulator
    from stsvend.local.process import free_port

    emulator = Emulator(free_port(), ROOT / ".stsvend" / "bench" / f"{name}-moto.log", guarded=False)
    emulator.start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


def botocore_client(service: str, url: str) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(
        service, region_name=REGION, endpoint_url=url,
        aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
    )


def create_grants_table(ddb: Any, table: str, grants: Sequence[Mapping[str, Any]]) -> None:
    """Create `table` and fill it with BatchWriteItem, 25 items a call."""
    from chalicelib.grant_store import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA, to_item

    ddb.create_table(
        TableName=table,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        BillingMode="PAY_PER_REQUEST",
    )
    items = [{"PutRequest": {"Item": to_item(g)}} for g in grants]
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {table: items[start:start + 25]}
        for _ in range(10):
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise RuntimeError(f"BatchWriteItem left items unprocessed in {table}")


# -- the machine ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def oidc_entries(issuer_url: str) -> list[dict[str, Any]]:
    """A GitHub-shaped issuer at `issuer_url` and an OIDC grant for the bench's role, stored form."""
    from chalicelib.oidc.config import parse_issuer, parse_oidc_grant

    issuer = parse_issuer(
        {"kind": "github-actions", "issuer": issuer_url, "audiences": ["stsvend"],
         "required_claims": {"repository_owner_id": "9000001"}},
        "bench",
    )
    from bench.events import jenkins_grant

    role = jenkins_grant()["roles"][0]
    grant = parse_oidc_grant(
        {"issuer": "bench", "roles": [role],
         "claims": {"repository_id": "400000001", "ref": "refs/heads/main"}},
        "bench-deploy",
        {"bench": issuer},
    )
    return [issuer.to_item(), grant.to_item()]
