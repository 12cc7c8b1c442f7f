"""Benchmark: the identity-provider vending mode against AssumeRole mode, on the emulator.

The same caller and grant ask for a role in `assume-role` mode (one AssumeRole) and for a role in
`web-identity` mode (kms:Sign with the issuer key, then AssumeRoleWithWebIdentity), through the app
in one process, with every AWS call answered by a moto server over loopback HTTP (plain moto: the
guard's token checks are not on this path; real STS makes them on its side).

- warm: WARMUP vends of each, then REQUESTS of each, interleaved; and the bare kms:Sign call alone.
- cold: a fresh process imports the function and serves its first vend in one mode or the other
  (the web-identity one also reads the key with kms:GetPublicKey, once per process), ROUNDS each,
  interleaved; spawn to first answer.

What AWS says of kms:Sign's latency: nothing in numbers. KMS publishes request quotas (Sign with an
asymmetric key counts against a per-account, per-Region quota shared by key type, RSA or ECC:
https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html), not latencies; an
emulator measures none of KMS's network or HSM time, so the warm difference here is stsvend's own
work plus one more loopback call, and the cost on AWS is one more in-Region KMS round trip.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench.common import (
    PYTHON,
    base_environment,
    botocore_client,
    child_main,
    comparison,
    create_grants_table,
    interleaved,
    moto_server,
    run_child,
)

NAME = "web_identity_vend"
TITLE = "Identity-provider mode vs AssumeRole mode (moto over loopback)"
WARMUP = 20
REQUESTS = 200
ROUNDS = 10
TABLE = "stsvend-grants-bench"
LONG_ROLE = "arn:aws:iam::222222222222:role/long-jobs"


def _grant() -> dict[str, Any]:
    from bench.events import jenkins_grant

    grant = jenkins_grant()
    grant["roles"].append(
        {
            "role_arn": LONG_ROLE,
            "max_duration_seconds": 43200,
            "policy_arns": [],
            "mode": "web-identity",
            "session_policy": "ec2-deploy",
            "session_policy_document": grant["roles"][0]["session_policy_document"],
        }
    )
    return grant


def _body(mode: str) -> dict[str, Any]:
    from bench.events import REQUEST

    return {**REQUEST, "role_arn": LONG_ROLE} if mode == "web-identity" else dict(REQUEST)


def run(context: Any) -> dict[str, Any]:
    with moto_server(NAME) as url:
        create_grants_table(botocore_client("dynamodb", url), TABLE, [_grant()])
        key = botocore_client("kms", url).create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
        env = {
            **base_environment(),
            "AWS_ENDPOINT_URL": url,
            "AWS_LAMBDA_FUNCTION_NAME": "stsvend-bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "STSVEND_GRANTS_TABLE": TABLE,
            "STSVEND_IDENTITY_MODE": "apigateway",
            "STSVEND_GRANT_CACHE_SECONDS": "3600",
            "STSVEND_ISSUER_URL": "https://issuer.bench.example/api",
            "STSVEND_ISSUER_KEYS": key["KeyMetadata"]["Arn"],
        }
        _, warm = run_child([PYTHON, "-m", "bench.webidentity", "warm"], env, timeout=600)

        def cold(mode: str) -> Any:
            return lambda: run_child([PYTHON, "-m", "bench.webidentity", "cold", mode], env, timeout=120)[0]

        cold("assume-role")()  # unmeasured: the emulator's and page cache's first-time costs
        cold("web-identity")()
        assume_cold, identity_cold = interleaved(ROUNDS, cold("assume-role"), cold("web-identity"))
    how = f"{REQUESTS} vends each after {WARMUP} warm-up, interleaved, moto over loopback"
    return {
        "title": TITLE,
        "comparisons": [
            *(
                comparison(label, warm["web-identity"], warm["assume-role"], None,
                           "kms:Sign + AssumeRoleWithWebIdentity", "AssumeRole", how, quantile=quantile)
                for label, quantile in (
                    ("warm vend: web-identity mode vs assume-role mode (p50)", "p50_ms"),
                    ("the same, at p90", "p90_ms"),
                )
            ),
            comparison(
                "the kms:Sign call alone vs a whole assume-role vend",
                warm["sign"],
                warm["assume-role"],
                None,
                "kms:Sign (emulator)",
                "AssumeRole-mode vend",
                how,
            ),
            comparison(
                "cold start to first vend: web-identity mode vs assume-role mode",
                identity_cold,
                assume_cold,
                None,
                "first vend, web-identity",
                "first vend, assume-role",
                f"{ROUNDS} fresh processes each, interleaved; spawn to first answer",
            ),
        ],
    }


def _vend(app: Any, mode: str, serial: int) -> None:
    from bench.events import LambdaContext, credentials_event

    event = credentials_event(f"00000000-0000-4000-8000-{serial:012d}", _body(mode))
    status = app(event, LambdaContext())["statusCode"]
    if status != 200:
        raise RuntimeError(f"{mode} vend answered {status}")


def measure_warm() -> dict[str, Any]:
    import app as app_module

    service = app_module.service()
    handler = app_module.app
    assert service.issuer is not None
    kms = service._clients.client("kms")  # noqa: SLF001 - the very client the vend path signs with
    key = service.issuer.key(service.issuer.key_arns[0])
    serial = iter(range(1, 10**9))
    for _ in range(WARMUP):
        _vend(handler, "assume-role", next(serial))
        _vend(handler, "web-identity", next(serial))

    def sign() -> None:
        kms.sign(KeyId=key.arn, Message=b"x" * 900, MessageType="RAW", SigningAlgorithm=key.kms_algorithm)

    assume, identity, signed = interleaved(
        REQUESTS,
        lambda: _vend(handler, "assume-role", next(serial)),
        lambda: _vend(handler, "web-identity", next(serial)),
        sign,
    )
    return {"assume-role": assume, "web-identity": identity, "sign": signed}


def measure_cold(mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    import app as app_module

    _vend(app_module.app, mode, 1)
    return {"first_vend_ms": round((time.perf_counter() - started) * 1000, 3)}


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    if sys.argv[1] == "warm":
        child_main(measure_warm)
    else:
        child_main(lambda: measure_cold(sys.argv[2]))
