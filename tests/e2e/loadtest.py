"""A bounded load test of the local stack: many vends from concurrent clients on 127.0.0.1, then
the books are balanced — every answered vend has exactly one `credentials.vended` audit line and
exactly one AssumeRole request at the emulator, and nothing else was vended.

`python -m tests.e2e.loadtest [--vends 2000] [--clients 16]` (also `make loadtest`) starts its own
stack on free ports, prints the figures and exits non-zero if the books do not balance;
tests/e2e/test_load.py runs it with smaller numbers in `make test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials

from stsvend.client.location import server_id_for
from stsvend.client.signing import PROOF_HEADER, build_identity_proof, request_binding
from stsvend.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
# (identity, role, tags): the two granted flows of the local stack.
FLOWS = (
    ("jenkins", "arn:aws:iam::222222222222:role/deployer", {"build-id": "load", "job-name": "load"}),
    ("sample-app", "arn:aws:iam::111111111111:role/read-only", {}),
)


@dataclass
class LoadReport:
    vends: int
    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    answered: dict[str, str] = field(default_factory=dict)  # request id -> access key id
    audited: Counter[str] = field(default_factory=Counter)  # request id -> vended audit lines
    audited_keys: dict[str, str] = field(default_factory=dict)
    sts_requests: Counter[str] = field(default_factory=Counter)  # request id tag -> AssumeRoles
    secrets: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def balanced(self) -> bool:
        answered = set(self.answered)
        return (
            not self.errors
            and len(self.answered) == self.vends
            and set(self.audited) == answered
            and all(n == 1 for n in self.audited.values())
            and set(self.sts_requests) == answered
            and all(n == 1 for n in self.sts_requests.values())
            and all(self.audited_keys.get(rid) == key for rid, key in self.answered.items())
        )

    def summary(self) -> dict[str, Any]:
        return {
            "vends": self.vends,
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "throughput_per_s": round(len(self.answered) / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(self.percentile(50), 1),
            "p99_ms": round(self.percentile(99), 1),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else 0,
            "errors": dict(self.errors),
            "answered": len(self.answered),
            "audit_vended_lines": sum(self.audited.values()),
            "sts_assume_role_requests": sum(self.sts_requests.values()),
            "balanced": self.balanced,
        }


def _prover(stack: LocalStack) -> Callable[[str, bytes], str]:
    """Proofs for the stack's identities, each bound to the body it travels with (signing is local
    and fast: it stays within what a client does per request)."""
    state = stack.state
    server_id = server_id_for(state.api_url, None, {})

    def proof(identity: str, body: bytes) -> str:
        me = state.identities[identity]
        return build_identity_proof(
            Credentials(me.access_key_id, me.secret_access_key),
            state.region,
            state.emulator_url,
            server_id,
            request_binding("POST", "/credentials", body),
        )

    return proof


def _vend(url: str, proof: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", PROOF_HEADER: proof},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback stack
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def run_load(stack: LocalStack, vends: int, clients: int, time_cap: float = 240.0) -> LoadReport:
    report = LoadReport(vends, clients)
    prove = _prover(stack)
    url = stack.state.api_url + "/credentials"
    lock = threading.Lock()
    next_index = iter(range(vends))
    deadline = time.monotonic() + time_cap

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            identity, role, tags = FLOWS[index % len(FLOWS)]
            body = json.dumps(
                {"role_arn": role, "tags": tags, "duration_seconds": 900, "session_name": f"load-{index}"}
            ).encode()
            proof = prove(identity, body)  # the client's work, not the service's: not timed
            started = time.perf_counter()
            try:
                status, answer = _vend(url, proof, body)
            except OSError as exc:
                status, answer = 0, {"Code": type(exc).__name__}
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                report.latencies_ms.append(elapsed)
                if status == 200:
                    report.answered[answer["RequestId"]] = answer["AccessKeyId"]
                    report.secrets += [answer["SecretAccessKey"], answer["SessionToken"]]
                else:
                    report.errors[f"{status} {answer.get('Code')}"] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(time_cap + 60)
    report.seconds = time.perf_counter() - started
    if len(report.latencies_ms) < vends:
        report.errors["not sent before the time cap"] += vends - len(report.latencies_ms)

    for line in stack.api_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "credentials.vended":
            report.audited[record["request_id"]] += 1
            report.audited_keys[record["request_id"]] = record["access_key_id"]
    for call in stack.emulator.recorded_calls("AssumeRole"):
        tags = {call.get(f"Tags.member.{i}.Key"): call.get(f"Tags.member.{i}.Value") for i in range(1, 51)}
        report.sts_requests[str(tags.get("stsvend:request-id"))] += 1
    return report


def leaked_secrets(stack: LocalStack, report: LoadReport) -> int:
    logs = stack.api_log.read_text(encoding="utf-8", errors="replace")
    logs += stack.api_errors_log.read_text(encoding="utf-8", errors="replace")
    logs += stack.emulator.process.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(1 for secret in report.secrets if secret in logs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.loadtest", description=__doc__)
    parser.add_argument("--vends", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--time-cap", type=float, default=240.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stsvend-load-") as state_dir:
        stack = LocalStack.on_free_ports(ROOT, Path(state_dir), record_requests=True)
        stack.start()
        try:
            report = run_load(stack, args.vends, args.clients, args.time_cap)
            summary = report.summary()
            summary["secrets_in_logs"] = leaked_secrets(stack, report)
        finally:
            stack.stop()
    print(json.dumps(summary, indent=2))
    return 0 if summary["balanced"] and summary["secrets_in_logs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
